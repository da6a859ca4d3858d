#!/usr/bin/env node
// A Cerebral client to copy: lists the tenant's projects with a Relay
// connection query over HTTP (Apollo HttpLink), then follows the `events`
// subscription over a WebSocket (GraphQLWsLink, graphql-transport-ws) from a
// cursor, printing each event, and exits after N of them.
//
// Resuming is the point: every event carries a `cursor`; the script keeps
// the last one it printed (in --state FILE, if given) and subscribes with
// `after: <that cursor>`, so a reconnect or the next run continues exactly
// after it — no event missed, none repeated. If the socket drops it
// reconnects and subscribes again from the last cursor it saw.
//
//   npm ci
//   node follow-events.mjs --url http://127.0.0.1:8000/graphql --count 5 --state .cursor
//   node follow-events.mjs --url http://127.0.0.1:8000/graphql --count 5 --state .cursor  # the next 5
//
// Options (or environment):
//   --url URL          GraphQL endpoint (CEREBRAL_URL; default http://127.0.0.1:8000/graphql)
//   --token JWT        bearer token, when the server requires one (CEREBRAL_TOKEN)
//   --after CURSOR     start after this cursor: "0" replays the whole log,
//                      "HEAD" starts with the next commit (default "0", or the --state file)
//   --state FILE       read the starting cursor from FILE and write each new cursor to it
//   --count N          exit after N events (default 10)
//   --project ID       only events of this project
//   --timeout-seconds S  give up (exit 1) when N events have not arrived in S seconds (default 60)
//
// Output: one line per project (`project <id> <status> <name>`), then one
// JSON line per event (`{"cursor":…,"type":…,…}`), on standard output.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  ApolloClient,
  ApolloLink,
  HttpLink,
  InMemoryCache,
  gql,
} from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

// Apollo's GraphQLWsLink looks for a global WebSocket when it sorts out a
// closed socket; Node 20 has none (Node 22 does), so lend it `ws`.
globalThis.WebSocket ??= WebSocket;

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.CEREBRAL_URL ?? 'http://127.0.0.1:8000/graphql' },
    token: { type: 'string', default: process.env.CEREBRAL_TOKEN },
    after: { type: 'string' },
    state: { type: 'string' },
    count: { type: 'string', default: '10' },
    project: { type: 'string' },
    'timeout-seconds': { type: 'string', default: '60' },
  },
});
const wanted = Number.parseInt(opts.count, 10);
const timeoutMs = Number.parseFloat(opts['timeout-seconds']) * 1000;

// Where to start: an explicit --after, else the state file, else the start.
const saved =
  opts.state && existsSync(opts.state) ? readFileSync(opts.state, 'utf8').trim() : '';
let cursor = opts.after ?? (saved || '0');

const authHeaders = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};

// Queries and mutations go over HTTP, subscriptions over the WebSocket.
const httpLink = new HttpLink({ uri: opts.url, headers: authHeaders });
const wsClient = createClient({
  url: opts.url.replace(/^http/, 'ws'),
  webSocketImpl: WebSocket,
  // Sent in `connection_init`; Cerebral reads the token from it.
  connectionParams: () => authHeaders,
  // Reconnect when the socket drops (a server restart, a replica shutting
  // down with 1001). graphql-ws would re-send the original subscription,
  // whose `after` is stale by then, so we resubscribe ourselves instead:
  // see `follow` below.
  retryAttempts: 0,
  lazy: true,
});
const wsLink = new GraphQLWsLink(wsClient);
const link = ApolloLink.split(
  ({ query }) => {
    const def = getMainDefinition(query);
    return def.kind === 'OperationDefinition' && def.operation === 'subscription';
  },
  wsLink,
  httpLink,
);
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const PROJECTS = gql`
  query Projects($after: String) {
    projects(first: 50, after: $after) {
      totalCount
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        id
        name
        status
      }
    }
  }
`;

const EVENTS = gql`
  subscription Events($after: String, $projectId: ID) {
    events(after: $after, projectId: $projectId) {
      cursor
      type
      projectId
      subjectType
      subjectId
      occurredAt
      payload
    }
  }
`;

/** Every project of the tenant, page by page (Relay `after: endCursor`). */
async function listProjects() {
  const all = [];
  let after = null;
  for (;;) {
    const { data } = await client.query({
      query: PROJECTS,
      variables: { after },
      fetchPolicy: 'network-only',
    });
    all.push(...data.projects.nodes);
    if (!data.projects.pageInfo.hasNextPage) return all;
    after = data.projects.pageInfo.endCursor;
  }
}

/**
 * Follows `events` from `cursor` until `wanted` events have been printed.
 * On a dropped socket it waits a little and subscribes again with the last
 * cursor it printed, so the stream continues without a gap or a repeat.
 */
function follow() {
  return new Promise((resolve, reject) => {
    let printed = 0;
    let subscription = null;
    let retries = 0;
    const timer = setTimeout(() => {
      subscription?.unsubscribe();
      reject(new Error(`only ${printed} of ${wanted} events within ${timeoutMs / 1000} s`));
    }, timeoutMs);

    // A GraphQL error with a code is final (e.g. UNAUTHENTICATED, or
    // RESYNC_REQUIRED: too far behind, start again from a fresh snapshot);
    // a transport error is worth a retry from the last cursor.
    const failed = (error) => {
      const code = error?.errors?.[0]?.extensions?.code ?? error?.extensions?.code;
      if (code || retries >= 10) {
        clearTimeout(timer);
        reject(error);
        return;
      }
      retries += 1;
      console.error(`stream interrupted (${error.message}); resuming after ${cursor}`);
      // 0.5 s, 1 s, 2 s, 4 s, then every 5 s: about 40 s in all, time
      // for a replica (or the load balancer's view of it) to come back.
      setTimeout(subscribe, Math.min(250 * 2 ** retries, 5000));
    };

    const subscribe = () => {
      subscription = client
        .subscribe({
          query: EVENTS,
          variables: { after: cursor, projectId: opts.project ?? null },
        })
        .subscribe({
          next({ data, error }) {
            if (error) {
              subscription?.unsubscribe();
              failed(error);
              return;
            }
            retries = 0;
            const { __typename, ...event } = data.events;
            console.log(JSON.stringify(event));
            cursor = event.cursor;
            if (opts.state) writeFileSync(opts.state, `${cursor}\n`);
            printed += 1;
            if (printed >= wanted) {
              clearTimeout(timer);
              subscription.unsubscribe();
              resolve(printed);
            }
          },
          error: failed,
          complete() {
            if (printed < wanted) setTimeout(subscribe, 500);
          },
        });
    };
    subscribe();
  });
}

let status = 0;
try {
  const projects = await listProjects();
  for (const p of projects) console.log(`project ${p.id} ${p.status} ${p.name}`);
  console.error(`${projects.length} project(s); following events after cursor ${cursor}`);
  await follow();
} catch (error) {
  console.error(`follow-events: ${error.message ?? error}`);
  status = 1;
} finally {
  await wsClient.dispose();
  client.stop();
}
process.exit(status);
