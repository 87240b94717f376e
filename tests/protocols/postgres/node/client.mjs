// node-postgres doing real work through the gateway; prints one JSON object of what it saw.
// The connection comes from WARDGATE_PG (JSON: host, port, user, password, database, ca).
import fs from "node:fs";
import pg from "pg";

const cfg = JSON.parse(process.env.WARDGATE_PG);
const client = new pg.Client({
  host: cfg.host,
  port: cfg.port,
  user: cfg.user,
  password: cfg.password,
  database: cfg.database,
  ssl: { ca: fs.readFileSync(cfg.ca, "utf8"), servername: "localhost" },
});
await client.connect();
const out = {};
await client.query("DROP TABLE IF EXISTS node_t; CREATE TABLE node_t (id int PRIMARY KEY, name text)");
await client.query("BEGIN");
for (let i = 0; i < 50; i++) {
  await client.query({ name: "ins", text: "INSERT INTO node_t VALUES ($1, $2)", values: [i, `n${i}`] });
}
await client.query("COMMIT");
const sum = await client.query("SELECT count(*)::int AS n, sum(id)::int AS s FROM node_t WHERE id >= $1", [0]);
out.count = sum.rows[0].n;
out.sum = sum.rows[0].s;
out.rowMode = (await client.query({ text: "SELECT 1 AS a, 'x' AS b", rowMode: "array" })).rows;
try {
  await client.query("INSERT INTO node_t VALUES (1, 'dup')");
} catch (err) {
  out.error = err.code;
}
const notified = new Promise((resolve) => client.on("notification", resolve));
await client.query("LISTEN node_channel");
await client.query("NOTIFY node_channel, 'hello node'");
const note = await notified;
out.payload = note.payload;
out.ownPid = note.processId === client.processID;
await client.end();
console.log(JSON.stringify(out));
