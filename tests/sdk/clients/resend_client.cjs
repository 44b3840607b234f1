// Drives the official resend Node SDK against mailgate: one run per scenario set.
// Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
// object of what the SDK returned, which tests/sdk/resend.rs checks along with the mail as it
// reaches the SMTP sink. resend-node never throws: failures come back as `error`.
const { Resend } = require("resend");

async function main() {
  const url = process.env.MAILGATE_URL;
  const FROM = "Acme <from@acme.test>";
  const resend = new Resend(process.env.MAILGATE_KEY, { baseUrl: url });
  const out = {};

  // The id of a send, or a failure with everything the SDK returned.
  function id({ data, error }) {
    if (error) throw new Error(`send failed: ${JSON.stringify(error)}`);
    return data.id;
  }

  out.plain = id(await resend.emails.send({
    from: FROM, to: ["Ada Lovelace <ada@x.test>"], subject: "plain",
    text: "hello plain", html: "<p>hello plain</p>",
  }));
  out.attachment = id(await resend.emails.send({
    from: FROM, to: "att@x.test", subject: "attachment", text: "see attached",
    attachments: [{ filename: "report.bin", content: Buffer.from([...Array(256).keys()]),
                    contentType: "application/octet-stream" }],
  }));
  out.extras = id(await resend.emails.send({
    from: FROM, to: "to@x.test", cc: "cc@x.test", bcc: ["bcc@x.test"], replyTo: "reply@x.test",
    subject: "extras", text: "extras", headers: { "X-Entity-Ref-ID": "123" },
    tags: [{ name: "category", value: "welcome" }],
  }));
  out.template = id(await resend.emails.send({
    from: FROM, to: "tpl@x.test", template: { id: "welcome", variables: { name: "Ada" } },
  }));
  const batch = await resend.batch.send([
    { from: FROM, to: "b1@x.test", subject: "batch 1", text: "one" },
    { from: FROM, to: "b2@x.test", subject: "batch 2", text: "two" },
  ]);
  if (batch.error) throw new Error(`batch failed: ${JSON.stringify(batch.error)}`);
  out.batch = batch.data.data.map((item) => item.id);
  const once = { from: FROM, to: "idem@x.test", subject: "idempotent", text: "once" };
  out.idempotent = [];
  for (let i = 0; i < 2; i++) {
    out.idempotent.push(id(await resend.emails.send(once, { idempotencyKey: "order-1042" })));
  }
  const got = await resend.emails.get(out.extras);
  out.get = got.data;
  // Scheduled in Resend's plain words, then cancelled.
  out.scheduled = id(await resend.emails.send({ from: FROM, to: "later@x.test", subject: "later",
    text: "x", scheduledAt: "in 1 hour" }));
  out.cancel = (await resend.emails.cancel(out.scheduled)).data;
  const invalid = await resend.emails.send({ from: FROM, to: "not-an-address", subject: "x", text: "x" });
  out.invalid = invalid.error;
  const limitedClient = new Resend(process.env.MAILGATE_LIMITED_KEY, { baseUrl: url });
  const limited = { from: FROM, to: "limit@x.test", subject: "limited", text: "x" };
  id(await limitedClient.emails.send(limited));
  out.rate_limited = (await limitedClient.emails.send(limited)).error;
  const bad = new Resend(process.env.MAILGATE_BAD_KEY, { baseUrl: url });
  out.bad_key = (await bad.emails.send(once)).error;
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
