// Drives the official mailgun.js SDK against mailgate. Reads MAILGATE_URL, MAILGATE_KEY,
// MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON object of what the SDK returned
// or threw, which tests/sdk/mailgun.rs checks along with the mail as it reaches the SMTP sink.
const FormData = require("form-data");
const Mailgun = require("mailgun.js");

async function main() {
  const FROM = "Acme <from@acme.test>";
  const DOMAIN = "acme.test";
  const client = (key) =>
    new Mailgun(FormData).client({ username: "api", key, url: process.env.MAILGATE_URL });
  const mg = client(process.env.MAILGATE_KEY);
  const out = {};

  // What the SDK resolved with, or the APIError it threw.
  async function send(data, via = mg) {
    try {
      return await via.messages.create(DOMAIN, data);
    } catch (e) {
      return { error: { type: e.type, status: e.status, details: e.details } };
    }
  }

  out.plain = await send({ from: FROM, to: ["Ada Lovelace <ada@x.test>"], subject: "plain",
    text: "hello plain", html: "<p>hello plain</p>" });
  out.attachment = await send({ from: FROM, to: "att@x.test", subject: "attachment",
    text: "see attached", attachment: [{ filename: "report.bin",
      data: Buffer.from([...Array(256).keys()]), contentType: "application/octet-stream" }] });
  out.extras = await send({ from: FROM, to: "to@x.test", cc: "cc@x.test", bcc: "bcc@x.test",
    subject: "extras", text: "extras", "h:Reply-To": "reply@x.test",
    "h:X-Entity-Ref-ID": "123", "o:tag": ["welcome"], "v:user_id": "42" });
  out.template = await send({ from: FROM, to: "tpl@x.test", template: "welcome",
    "t:variables": JSON.stringify({ name: "Ada" }) });
  // Batch sending: one request, one message per recipient with its own values.
  out.batch = await send({ from: FROM, to: ["b1@x.test", "B Two <b2@x.test>"],
    subject: "batch %recipient.n%", text: "batched for %recipient.name%",
    "recipient-variables": JSON.stringify({ "b1@x.test": { n: 1, name: "One" },
      "b2@x.test": { n: 2, name: "Two" } }) });
  out.recipient_variables = await send({ from: FROM, to: "b3@x.test", subject: "batch 3",
    text: "x", "recipient-variables": "[]" });
  out.test_mode = await send({ from: FROM, to: "test@x.test", subject: "test mode",
    text: "never sent", "o:testmode": "yes" });
  out.invalid = await send({ from: FROM, to: "not-an-address", subject: "x", text: "x" });
  const limited = client(process.env.MAILGATE_LIMITED_KEY);
  const message = { from: FROM, to: "limit@x.test", subject: "limited", text: "x" };
  await send(message, limited);
  out.rate_limited = await send(message, limited);
  out.bad_key = await send(message, client(process.env.MAILGATE_BAD_KEY));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
