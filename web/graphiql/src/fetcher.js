// One fetcher for HTTP and WebSocket that follows the headers editor.
//
// @graphiql/toolkit passes the editor's headers on HTTP requests, but a
// browser cannot set headers on a WebSocket: Cerebral reads the token from
// the `connection_init` payload instead. The WebSocket client is therefore
// made per set of headers; when the headers change, the old client is
// closed and the next subscription opens a connection with the new ones.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';

export function createFetcher(url, subscriptionUrl) {
  let key = null;
  let client = null;
  let fetcher = null;
  return (graphQLParams, opts) => {
    const headers = opts?.headers ?? {};
    const next = JSON.stringify(headers);
    if (next !== key) {
      if (client) client.dispose();
      key = next;
      client = createClient({
        url: subscriptionUrl,
        lazy: true,
        // The `Authorization` entry (if any) goes in `connection_init`.
        connectionParams: () => ({ ...headers }),
      });
      fetcher = createGraphiQLFetcher({ url, subscriptionUrl, wsClient: client });
    }
    return fetcher(graphQLParams, opts);
  };
}
