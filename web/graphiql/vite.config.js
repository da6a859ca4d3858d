import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The build is committed (web/graphiql/dist) and embedded in the binary,
// so it must be the same bytes on every machine: file names carry content
// hashes only, and nothing is inlined as base64 `data:` URLs that a strict
// Content-Security-Policy would have to allow.
export default defineConfig({
  // Served by cerebral under /graphiql/ (see src/http/graphiql.rs).
  base: '/graphiql/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 8000,
  },
  worker: { format: 'es' },
});
