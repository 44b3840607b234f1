// Drives the official SendGrid Node SDK (@sendgrid/mail over @sendgrid/client) against
// mailgate. Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY;
// prints one JSON object of what the SDK returned or threw, which tests/sdk/sendgrid.rs checks
// along with the mail as it reaches the SMTP sink.
const { MailService } = require("@sendgrid/mail");
const { Client } = require("@sendgrid/client");

async function main() {
  const FROM = { email: "from@acme.test", name: "Acme" };
  // The base URL is set after the key: setApiKey() resets it to SendGrid's host.
  function mailer(key) {
    const client = new Client();
    client.setApiKey(key);
    client.setDefaultRequest("baseUrl", process.env.MAILGATE_URL);
    const mail = new MailService();
    mail.setClient(client);
    return mail;
  }
  const sg = mailer("SG." + process.env.MAILGATE_KEY);
  const out = {};

  // The status and X-Message-Id of a send.
  async function sent(message, via = sg) {
    const [response] = await via.send(message).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(e.response && e.response.body)}`);
    });
    return { status: response.statusCode, id: response.headers["x-message-id"],
             ids: response.headers["x-mailgate-message-ids"] };
  }
  // The error the SDK threw: its class, status and body.
  async function raised(call) {
    try {
      await call();
      return { class: null };
    } catch (e) {
      return { class: e.constructor.name, status: e.code, body: e.response && e.response.body };
    }
  }

  out.plain = await sent({ from: FROM, to: { email: "ada@x.test", name: "Ada Lovelace" },
    subject: "plain", text: "hello plain", html: "<p>hello plain</p>" });
  out.attachment = await sent({ from: FROM, to: "att@x.test", subject: "attachment",
    text: "see attached", attachments: [{ filename: "report.bin", type: "application/octet-stream",
      disposition: "attachment", content: Buffer.from([...Array(256).keys()]).toString("base64") }] });
  out.extras = await sent({ from: FROM, to: "to@x.test", cc: "cc@x.test", bcc: "bcc@x.test",
    replyTo: "reply@x.test", subject: "extras", text: "extras",
    headers: { "X-Entity-Ref-ID": "123" }, categories: ["welcome"], customArgs: { user_id: "42" } });
  out.template = await sent({ from: FROM, to: "tpl@x.test", templateId: "d-welcome",
    dynamicTemplateData: { name: "Ada" } });
  // A "batch": one personalization per message, each with its own subject.
  out.batch = await sent({ from: FROM, subject: "batch", text: "batched", personalizations: [
    { to: "b1@x.test", subject: "batch 1" }, { to: "b2@x.test", subject: "batch 2" }] });
  out.sandbox = await sent({ from: FROM, to: "sandbox@x.test", subject: "sandbox",
    text: "never sent", mailSettings: { sandboxMode: { enable: true } } });
  out.invalid = await raised(() => sg.send({ from: FROM, to: "not-an-address", subject: "x",
    text: "x" }));
  const limited = mailer("SG." + process.env.MAILGATE_LIMITED_KEY);
  const message = { from: FROM, to: "limit@x.test", subject: "limited", text: "x" };
  await limited.send(message);
  out.rate_limited = await raised(() => limited.send(message));
  out.bad_key = await raised(() => mailer(process.env.MAILGATE_BAD_KEY).send(message));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
