// Drives resend-node's domains calls against mailgate: create, get, list, update, verify,
// remove. Reads MAILGATE_URL and MAILGATE_KEY (and PUBLISH, a file the test watches: the
// script writes the records there and waits for the test to publish them in its DNS server).
// Prints one JSON object of what the SDK returned; resend-node never throws.
const fs = require("fs");
const { Resend } = require("resend");

async function main() {
  const resend = new Resend(process.env.MAILGATE_KEY, { baseUrl: process.env.MAILGATE_URL });
  const must = (r, what) => {
    if (r.error) throw new Error(`${what} failed: ${JSON.stringify(r.error)}`);
    return r.data;
  };
  const out = {};
  const created = must(await resend.domains.create({ name: "sdk-node.test" }), "create");
  out.created = { id: created.id, name: created.name, status: created.status,
    records: created.records };
  const got = must(await resend.domains.get(created.id), "get");
  out.got = { object: got.object, id: got.id, status: got.status };
  const listed = must(await resend.domains.list(), "list");
  out.listed = { object: listed.object, ids: listed.data.map((d) => d.id) };
  const updated = must(await resend.domains.update({ id: created.id, openTracking: true }), "update");
  out.updated = { object: updated.object, id: updated.id };

  const publish = process.env.PUBLISH;
  fs.writeFileSync(`${publish}.tmp`, JSON.stringify(created.records));
  fs.renameSync(`${publish}.tmp`, publish);
  while (!fs.existsSync(`${publish}.done`)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const verified = must(await resend.domains.verify(created.id), "verify");
  out.verified = { object: verified.object, id: verified.id };
  out.after_verify = must(await resend.domains.get(created.id), "get").status;

  const removed = must(await resend.domains.remove(created.id), "remove");
  out.removed = { object: removed.object, id: removed.id, deleted: removed.deleted };
  const gone = await resend.domains.get(created.id);
  out.gone = gone.error ? { name: gone.error.name, statusCode: gone.error.statusCode } : null;
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
