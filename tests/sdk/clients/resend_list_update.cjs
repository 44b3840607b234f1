// Drives resend-node's emails.list and emails.update (reschedule) against mailgate.
// Reads MAILGATE_URL and MAILGATE_KEY; prints one JSON object of what the SDK returned, which
// tests/sdk/resend.rs checks against what mailgate stored. resend-node never throws.
const { Resend } = require("resend");

async function main() {
  const resend = new Resend(process.env.MAILGATE_KEY, { baseUrl: process.env.MAILGATE_URL });
  const FROM = "Acme <from@acme.test>";
  const out = {};
  const sent = async (email) => {
    const { data, error } = await resend.emails.send(email);
    if (error) throw new Error(`send failed: ${JSON.stringify(error)}`);
    return data.id;
  };
  const now = await sent({ from: FROM, to: "now@x.test", cc: "cc@x.test", subject: "now",
    text: "x" });
  const later = await sent({ from: FROM, to: "later@x.test", subject: "later", text: "x",
    scheduledAt: "in 1 hour" });
  out.ids = { now, later };
  const first = await resend.emails.list({ limit: 1 });
  if (first.error) throw new Error(`list failed: ${JSON.stringify(first.error)}`);
  out.first_page = { object: first.data.object, has_more: first.data.has_more,
    ids: first.data.data.map((e) => e.id), to: first.data.data[0].to,
    last_event: first.data.data[0].last_event };
  const second = await resend.emails.list({ limit: 1, after: first.data.data[0].id });
  out.second_page = { has_more: second.data.has_more, ids: second.data.data.map((e) => e.id),
    cc: second.data.data[0].cc };
  out.new_time = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
  const updated = await resend.emails.update({ id: later, scheduledAt: out.new_time });
  if (updated.error) throw new Error(`update failed: ${JSON.stringify(updated.error)}`);
  out.updated = { object: updated.data.object, id: updated.data.id };
  const refused = await resend.emails.update({ id: now, scheduledAt: out.new_time });
  out.not_scheduled = refused.error
    ? { name: refused.error.name, statusCode: refused.error.statusCode } : null;
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
