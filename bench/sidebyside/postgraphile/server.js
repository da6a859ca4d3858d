// PostGraphile 5 (amber preset) for the side-by-side benchmark, run by
// bench/sidebyside/run.py with NODE_ENV=production.
//
//   DATABASE_URL      the role to serve as (the non-owner role: row-level
//                     security binds it, as it binds Cerebral's)
//   PG_TENANT_ID      when set, every request runs with
//                     cerebral.tenant_id = this tenant (pgSettings), as a
//                     PostGraphile user would set it from the JWT
//   PORT              port on 127.0.0.1
import "./polyfill.js";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

const tenant = process.env.PG_TENANT_ID;
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      pgSettings: tenant ? () => ({ "cerebral.tenant_id": tenant }) : undefined,
      pgSettingsForIntrospection: tenant ? { "cerebral.tenant_id": tenant } : undefined,
    }),
  ],
  grafserv: { port: Number(process.env.PORT || 5678), host: "127.0.0.1", graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
serv.addTo(server).catch((e) => {
  console.error(e);
  process.exit(1);
});
server.listen(preset.grafserv.port, "127.0.0.1", () => {
  console.error(`postgraphile listening on 127.0.0.1:${preset.grafserv.port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    pgl.release().finally(() => process.exit(0));
  });
}
