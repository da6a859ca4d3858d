// The GraphiQL page of Cerebral. Everything it loads is bundled here and
// served by the binary (no CDN), so it works behind a firewall.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './page.css';

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';

import { createFetcher } from './fetcher.js';

// Same origin as the page: GraphQL over HTTP and WebSocket share /graphql.
const http = new URL('/graphql', window.location.href);
const ws = new URL(http);
ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';

// `?query=` (and `variables`, `operationName`) open a ready operation, so
// links in the docs can point at one. Headers are never read from the URL:
// a token in a link would leak into logs and history.
const params = new URLSearchParams(window.location.search);
const initialQuery = params.get('query') ?? undefined;
const initialVariables = params.get('variables') ?? undefined;

const defaultHeaders = `{
  "Authorization": "Bearer <token from: cerebral token>"
}`;

const defaultQuery = `# Cerebral: a GraphQL control plane for AI agent teams.
# Without CEREBRAL_JWT_SECRET the server runs in development mode and needs
# no token; otherwise put "Authorization": "Bearer <jwt>" in Headers below
# (it is sent on HTTP requests and in the WebSocket connection_init).

query Personas {
  personas(first: 10) {
    nodes { key name title }
  }
}
`;

createRoot(document.getElementById('graphiql')).render(
  <StrictMode>
    <GraphiQL
      fetcher={createFetcher(http.href, ws.href)}
      initialQuery={initialQuery}
      initialVariables={initialVariables}
      defaultQuery={defaultQuery}
      defaultHeaders={defaultHeaders}
      defaultEditorToolsVisibility={initialVariables ? 'variables' : 'headers'}
      isHeadersEditorEnabled
    />
  </StrictMode>,
);
