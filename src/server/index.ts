/** The HTTP server that exposes a database's reads and change feed. */
export { createServer, statusOf } from './server.js';
export type { FloeServer, ServerOptions } from './server.js';
