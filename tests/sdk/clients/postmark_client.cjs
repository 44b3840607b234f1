// Drives the official postmark Node SDK against mailgate: one run per scenario set.
// Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
// object of what the SDK returned or threw, which tests/sdk/postmark.rs checks along with the
// mail as it reaches the SMTP sink.
const postmark = require("postmark");

async function main() {
  const host = new URL(process.env.MAILGATE_URL).host;
  const FROM = "Acme <from@acme.test>";
  const client = (key) => new postmark.ServerClient(key, { useHttps: false, requestHost: host });
  const mailgate = client(process.env.MAILGATE_KEY);
  const out = {};

  // The error class the SDK threw, with its Postmark ErrorCode and HTTP status.
  async function raised(call) {
    try {
      await call();
      return { class: null };
    } catch (e) {
      return { class: e.constructor.name, code: e.code, status: e.statusCode };
    }
  }

  out.plain = (await mailgate.sendEmail({
    From: FROM, To: "Ada Lovelace <ada@x.test>", Subject: "plain",
    TextBody: "hello plain", HtmlBody: "<p>hello plain</p>",
  })).MessageID;
  out.attachment = (await mailgate.sendEmail({
    From: FROM, To: "att@x.test", Subject: "attachment", TextBody: "see attached",
    Attachments: [{ Name: "report.bin", ContentID: null,
                    Content: Buffer.from([...Array(256).keys()]).toString("base64"),
                    ContentType: "application/octet-stream" }],
  })).MessageID;
  out.extras = (await mailgate.sendEmail({
    From: FROM, To: "to@x.test", Cc: "cc@x.test", Bcc: "bcc@x.test", ReplyTo: "reply@x.test",
    Subject: "extras", TextBody: "extras", Headers: [{ Name: "X-Entity-Ref-ID", Value: "123" }],
    Tag: "welcome", Metadata: { user_id: "42" },
  })).MessageID;
  out.template = (await mailgate.sendEmailWithTemplate({
    TemplateAlias: "welcome", TemplateModel: { name: "Ada" }, From: FROM, To: "tpl@x.test",
  })).MessageID;
  const batch = await mailgate.sendEmailBatch([
    { From: FROM, To: "b1@x.test", Subject: "batch 1", TextBody: "one" },
    { From: FROM, To: "b2@x.test", Subject: "batch 2", TextBody: "two" },
    { From: FROM, To: "not-an-address", Subject: "batch 3", TextBody: "three" },
  ]);
  out.batch = batch.map((r) => ({ id: r.MessageID, code: r.ErrorCode }));
  out.invalid = await raised(() => mailgate.sendEmail({
    From: FROM, To: "not-an-address", Subject: "x", TextBody: "x",
  }));
  const limited = client(process.env.MAILGATE_LIMITED_KEY);
  const message = { From: FROM, To: "limit@x.test", Subject: "limited", TextBody: "x" };
  await limited.sendEmail(message);
  out.rate_limited = await raised(() => limited.sendEmail(message));
  out.bad_key = await raised(() => client(process.env.MAILGATE_BAD_KEY).sendEmail(message));
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
