//! Turning a send request into committed rows: validate, render the MIME once, commit.
//! Shared by every way mail comes in: single and batch HTTP sends (`prepare`, `commit`) and
//! SMTP submission, whose MIME arrives ready (`commit_raw`). Transports translate their input
//! into these calls, and a [`SubmissionError`] into their own reply.
//!
//! - `batch`: what one request's messages share while prepared (the bound on the bytes they
//!   render, the scanners' verdicts by content).
//! - `error`: why a message was not accepted.
//! - `template`: filling a send request from a stored template.

mod batch;
mod error;
mod template;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use batch::Batch;
pub use error::SubmissionError;

/// A send request as a transport parsed it (the native JSON body today; each provider's shape
/// later). The core fills in a stored template's content, then the request checks itself
/// into a [`NewEmail`]. A trait, so the request types stay with their transport and the core
/// depends on none of them.
pub trait Draft: Send {
    /// The stored template to render, if the request names one.
    fn template(&self) -> Option<&str>;
    /// Whether the request gives template variables.
    fn has_variables(&self) -> bool;
    /// Takes the template variables out of the request.
    fn take_variables(&mut self) -> Option<serde_json::Value>;
    /// Which of `subject`, `html` and `text` the request gives itself.
    fn content_given(&self) -> [(&'static str, bool); 3];
    /// Puts a rendered template's content in place.
    fn fill(&mut self, subject: Option<String>, html: Option<String>, text: Option<String>);
    /// Every problem at once, each named by its field; `relay_exists` says whether a named
    /// relay is configured.
    fn validate(
        self,
        relay_exists: &dyn Fn(&str) -> bool,
        max_schedule: chrono::Duration,
    ) -> Result<NewEmail, Vec<FieldError>>;
    /// Opens and clicks this send asks to track; by default, the project's defaults.
    fn track(&self) -> Track {
        Track::default()
    }
    /// Whether this send asks for one-click unsubscribe headers (RFC 8058); `None` takes the
    /// project's default.
    fn unsubscribe(&self) -> Option<bool> {
        None
    }
}

use crate::{
    delivery::Relays,
    domain::{
        EmailAddress, FieldError, NewEmail, RecipientKind, Track,
        status::{MessageStatus, RecipientStatus, summarise},
    },
    mime,
    queue::wake::Waker,
    scan::{self, Ruling, Scanner},
    store::domains::VerifiedDomains,
    store::projects::ProjectCache,
    store::{
        api_keys::AuthenticatedKey,
        group_commit::GroupCommit,
        messages::{AcceptedMessage, Submitter},
    },
    templates::TemplateCache,
    tracking::Tracker,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientSummary {
    pub email: String,
    #[schema(value_type = String)]
    pub status: RecipientStatus,
}

/// The answer to an accepted send: committed, and it will reach a terminal status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub status: MessageStatus,
    pub recipients: Vec<RecipientSummary>,
}

/// What the submission core needs of the process: where sends commit, the template cache,
/// the relays a send may name, the workers to wake, and the size and schedule bounds.
/// Cheap to clone.
#[derive(Clone)]
pub struct SubmissionCore {
    pool: PgPool,
    /// Where sends commit (`store::group_commit`).
    commits: GroupCommit,
    templates: TemplateCache,
    relays: Arc<Relays>,
    /// The mail runner's: an accept makes mail due. Its `queued` events reach webhooks with
    /// the delivery's wake-up (or the poll), so the accept path costs the webhook queue nothing.
    waker: Waker,
    max_message_bytes: usize,
    /// Most bytes one request's messages may render in all (`http.max_request_bytes_rendered`).
    max_request_rendered: usize,
    max_schedule: chrono::Duration,
    /// Opens and clicks, when `tracking.base_url` is set.
    tracker: Option<Arc<Tracker>>,
    /// Spam and virus scanning, when a scanner is configured.
    scanner: Option<Arc<Scanner>>,
    /// Projects' settings as the accept path reads them (tracking defaults, scan policy).
    projects: ProjectCache,
    /// With `domains.require_verified`: each project's verified sending domains, which
    /// every From must be at.
    sender_domains: Option<VerifiedDomains>,
}

/// A message that passed every check and has its bytes, not yet committed.
pub struct Prepared {
    pub id: Uuid,
    pub email: NewEmail,
    pub message_id: String,
    pub mime: Vec<u8>,
    /// The content policy's verdict: why it is held, if it is, and what the scanners said.
    pub hold: Option<String>,
    pub scan: Option<serde_json::Value>,
}

/// What the content policy lets through: headers to put on the stored MIME (from `tag`),
/// whether it is held, and the scanners' verdict.
#[derive(Default)]
struct Screened {
    headers: Vec<(String, String)>,
    hold: Option<String>,
    scan: Option<serde_json::Value>,
}

impl SubmissionCore {
    pub fn new(
        pool: PgPool,
        commits: GroupCommit,
        templates: TemplateCache,
        relays: Arc<Relays>,
        waker: Waker,
        max_message_bytes: usize,
        max_schedule_days: i64,
    ) -> Self {
        Self {
            pool,
            commits,
            templates,
            relays,
            waker,
            max_message_bytes,
            max_request_rendered: usize::MAX,
            max_schedule: chrono::Duration::days(max_schedule_days),
            tracker: None,
            scanner: None,
            projects: ProjectCache::default(),
            sender_domains: None,
        }
    }

    /// Refuses mail whose From is not at a verified sending domain of its project
    /// (`domains.require_verified`).
    pub fn with_required_sender_domains(mut self, required: bool) -> Self {
        self.sender_domains = required.then(VerifiedDomains::default);
        self
    }

    /// A project's sending domains changed: this process reads them again at once; others
    /// within `store::domains::CACHE_TTL`.
    pub fn sender_domains_changed(&self, project: Uuid) {
        if let Some(domains) = &self.sender_domains {
            domains.forget(project);
        }
    }

    /// With `domains.require_verified`, refuses a From domain (A-label, lower case) that is
    /// neither a verified domain of the project nor below one (relaxed alignment, as DMARC).
    async fn check_sender_domain(
        &self,
        project: Uuid,
        from_domain: Option<String>,
    ) -> Result<(), SubmissionError> {
        let Some(domains) = &self.sender_domains else {
            return Ok(());
        };
        let from = from_domain.unwrap_or_default();
        let verified = domains.get(&self.pool, project).await?;
        let covered = verified
            .iter()
            .any(|d| from == *d || from.ends_with(&format!(".{d}")));
        if covered {
            Ok(())
        } else {
            Err(SubmissionError::DomainNotVerified(if from.is_empty() {
                "(none)".into()
            } else {
                from
            }))
        }
    }

    /// Bounds the bytes one request's messages render in all.
    pub fn with_max_request_rendered(mut self, bytes: usize) -> Self {
        self.max_request_rendered = bytes;
        self
    }

    /// What the messages of one request share while each is prepared with [`Self::prepare_in`].
    pub fn batch(&self) -> Batch {
        Batch::new(self.max_request_rendered)
    }

    /// Reads projects through `projects` (shared with the tracker and the scanner).
    pub fn with_projects(mut self, projects: ProjectCache) -> Self {
        self.projects = projects;
        self
    }

    /// Scans every message before it is accepted (see `scan`).
    pub fn with_scanner(mut self, scanner: Option<Arc<Scanner>>) -> Self {
        self.scanner = scanner;
        self
    }

    /// Scans `mime` and applies the policy: refused, held, tagged or passed as it is. The
    /// envelope (sender, recipients) is gathered only when a scanner will read it. Called
    /// before tracking rewrites the links, so the scanners see where they really lead. With
    /// `shared`, a verdict the request already has for the same content is used again.
    async fn screen<'a>(
        &self,
        project: Uuid,
        id: Uuid,
        mime: &[u8],
        envelope: impl FnOnce() -> (&'a str, Vec<&'a str>),
        shared: Option<(&mut Batch, batch::ContentKey)>,
    ) -> Result<Screened, SubmissionError> {
        let Some(scanner) = &self.scanner else {
            return Ok(Screened::default());
        };
        let known = shared.as_ref().and_then(|(batch, key)| batch.verdict(key));
        let ruling = match known {
            Some(ruling) => ruling,
            None => {
                let (from, rcpts) = envelope();
                let ruling = scanner.check(project, id, mime, from, &rcpts).await?;
                if let Some((batch, key)) = shared {
                    batch.remember(key, &ruling);
                }
                ruling
            }
        };
        match ruling {
            Ruling::Accept { headers, verdict } => Ok(Screened {
                headers,
                hold: None,
                scan: Some(verdict),
            }),
            Ruling::Hold {
                reason,
                headers,
                verdict,
            } => Ok(Screened {
                headers,
                hold: Some(reason),
                scan: Some(verdict),
            }),
            Ruling::Reject {
                scanner,
                detail,
                virus,
            } => {
                metrics::counter!("mailgate_scan_rejected_total", "scanner" => scanner)
                    .increment(1);
                tracing::info!(%project, %detail, "content policy: message rejected");
                Err(SubmissionError::ContentRejected { detail, virus })
            }
            Ruling::Unavailable(why) => Err(SubmissionError::ScanUnavailable(why)),
            Ruling::TooLarge(why) => Err(SubmissionError::TooLarge(why)),
        }
    }

    /// Tracks opens and clicks of the sends that ask for it (or whose project does).
    pub fn with_tracker(mut self, tracker: Option<Arc<Tracker>>) -> Self {
        self.tracker = tracker;
        self
    }

    /// A project's settings changed: this process's cached copy goes (tracking defaults, scan
    /// policy); other processes see the change within `store::projects::CACHE_TTL`.
    pub fn project_settings_changed(&self, project: Uuid) {
        self.projects.forget(project);
    }

    /// Checks the request, renders its MIME and scans it (a refusal is an error; a hold is
    /// in the answer). Every problem names the field.
    pub async fn prepare(
        &self,
        key: &AuthenticatedKey,
        request: impl Draft,
    ) -> Result<Prepared, SubmissionError> {
        let mut alone = Batch::single(self.max_request_rendered);
        self.prepare_in(key, request, &mut alone).await
    }

    /// [`Self::prepare`] for one of a request's messages: its rendered bytes count against
    /// the request's bound, and a verdict for the same content is used again.
    pub async fn prepare_in(
        &self,
        key: &AuthenticatedKey,
        mut request: impl Draft,
        batch: &mut Batch,
    ) -> Result<Prepared, SubmissionError> {
        template::expand(self, key.project_id, &mut request).await?;
        let track = request.track();
        let unsubscribe = request.unsubscribe();
        let mut email = request
            .validate(&|name| self.relays.contains(name), self.max_schedule)
            .map_err(SubmissionError::Validation)?;
        self.check_sender_domain(
            key.project_id,
            email
                .from
                .email
                .as_str()
                .rsplit_once('@')
                .map(|(_, d)| crate::delivery::dkim::normalize_domain(d)),
        )
        .await?;
        if self.scanner.is_some() {
            // Only the scanners say what they found.
            email
                .headers
                .retain(|(name, _)| !scan::is_scanner_header(name));
        }
        let id = Uuid::now_v7();
        let message_id = mime::message_id(id, &email);
        // Every rendering counts against the request's bound, one refused for its size too.
        let render = |email: &NewEmail, batch: &mut Batch| {
            let rendered = mime::render(email, &message_id, self.max_message_bytes);
            batch.count(match &rendered {
                Ok(bytes) => bytes.len(),
                Err(mime::MimeError::TooLarge { size, .. }) => *size,
                Err(_) => 0,
            })?;
            rendered.map_err(|e| match e {
                mime::MimeError::TooLarge { .. } => SubmissionError::TooLarge(e.to_string()),
                mime::MimeError::Build(detail) => SubmissionError::validation("body", detail),
            })
        };
        // The HTML is instrumented once for every recipient.
        let tracked = match (&self.tracker, &email.html) {
            (Some(tracker), Some(html)) => {
                let choice = tracker
                    .choice(key.project_id, track)
                    .await
                    .map_err(anyhow::Error::from)?;
                (choice != (false, false)).then(|| tracker.html(html, id, choice))
            }
            _ => None,
        };
        // The bytes stored: with tracking, built from the instrumented HTML, so the size
        // limit applies to them. Checked before anything is scanned.
        let tracked = match tracked {
            Some(html) => {
                let written = email.html.replace(html);
                let tracked = render(&email, batch)?;
                email.html = written;
                Some(tracked)
            }
            None => None,
        };
        // Scanned as the sender wrote it, links and all.
        let mut screened = Screened::default();
        let mut untracked = None;
        if self.scanner.is_some() {
            let mime = render(&email, batch)?;
            let content = batch.key(&email);
            screened = self
                .screen(
                    key.project_id,
                    id,
                    &mime,
                    || {
                        let rcpts = email.recipients().into_iter().map(|(_, a)| a.as_str());
                        (email.from.email.as_str(), rcpts.collect())
                    },
                    content.map(|content| (&mut *batch, content)),
                )
                .await?;
            untracked = Some(mime);
        }
        let mime = match (tracked, untracked) {
            (Some(mime), _) | (None, Some(mime)) => mime,
            (None, None) => render(&email, batch)?,
        };
        let recipients = email.recipients();
        let one = match recipients.as_slice() {
            [(_, to)] => Some(to.as_str()),
            _ => None,
        };
        // A message with its own List-Unsubscribe keeps it: the project's default yields.
        let asked = unsubscribe.or(has_list_unsubscribe(&mime).then_some(false));
        let unsubscribe = match (self.unsubscribe(key.project_id, asked, one).await?, one) {
            (true, Some(to)) => self.unsubscribe_headers(key.project_id, id, to)?,
            // The request checked this already; a draft that did not is refused here.
            (true, None) => {
                return Err(SubmissionError::validation("unsubscribe", ONE_RECIPIENT));
            }
            (false, _) => Vec::new(),
        };
        let grown = header_bytes(&unsubscribe);
        let mut headers = screened.headers;
        headers.extend(unsubscribe);
        // The size limit applies to the message as stored, unsubscribe headers and all.
        if grown > 0 && mime.len() + grown > self.max_message_bytes {
            return Err(SubmissionError::TooLarge(format!(
                "the message is {} bytes with its unsubscribe headers, over the limit of {}",
                mime.len() + grown,
                self.max_message_bytes
            )));
        }
        Ok(Prepared {
            id,
            email,
            message_id,
            mime: scan::prepend_headers(&mime, &headers),
            hold: screened.hold,
            scan: screened.scan,
        })
    }

    /// Commits prepared messages together (one statement, perhaps shared with other sends: see
    /// `store::group_commit`) and wakes the workers. Only then may the caller answer 2xx.
    /// Answers come back in input order.
    pub async fn commit(
        &self,
        key: &AuthenticatedKey,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<Accepted>, SubmissionError> {
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let by = self.submitter(key.project_id, Some(key));
        let mut batch = Vec::with_capacity(prepared.len());
        for p in prepared {
            let email = p.email;
            batch.push(AcceptedMessage {
                id: p.id,
                by,
                metadata: serde_json::to_value(&email.metadata).map_err(anyhow::Error::from)?,
                recipients: email
                    .recipients()
                    .into_iter()
                    .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
                    .collect(),
                from: email.from.email.as_str().to_string(),
                subject: email.subject,
                message_id: p.message_id,
                mime: p.mime,
                tags: email.tags,
                relay: email.relay,
                send_at: email.send_at,
                hold: p.hold,
                scan: p.scan,
            });
        }
        self.commit_accepted(key.project_id, batch).await
    }

    /// Who a send counts as. Test keys never relay, whatever the configuration says.
    fn submitter(&self, project_id: Uuid, key: Option<&AuthenticatedKey>) -> Submitter {
        Submitter {
            project_id,
            api_key_id: key.map(|k| k.id),
            sandbox: key.is_some_and(|k| k.test_mode) || self.relays.is_sandbox(),
        }
    }

    /// The commit every way in shares: group commit, count, wake the workers, and one answer per
    /// message in input order.
    async fn commit_accepted(
        &self,
        project_id: Uuid,
        batch: Vec<AcceptedMessage>,
    ) -> Result<Vec<Accepted>, SubmissionError> {
        let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        let rows = self.commits.commit(batch).await?;
        metrics::counter!("mailgate_messages_accepted_total", "project" => project_id.to_string())
            .increment(ids.len() as u64);
        self.waker.wake();
        let mut by_message: HashMap<Uuid, Vec<RecipientSummary>> = HashMap::new();
        for r in rows {
            let status = r.status.parse().map_err(anyhow::Error::from)?;
            by_message
                .entry(r.message_id)
                .or_default()
                .push(RecipientSummary {
                    email: r.email,
                    status,
                });
        }
        Ok(ids
            .into_iter()
            .map(|id| {
                let recipients = by_message.remove(&id).unwrap_or_default();
                Accepted {
                    id,
                    status: summarise(&recipients.iter().map(|r| r.status).collect::<Vec<_>>()),
                    recipients,
                }
            })
            .collect())
    }

    /// Whether a send gets unsubscribe headers: as it asks, else as its project's default,
    /// which applies to sends with one recipient (`one`) on a server with
    /// `tracking.base_url` (a PATCH refuses it otherwise; a later config change just turns it
    /// off).
    async fn unsubscribe(
        &self,
        project: Uuid,
        asked: Option<bool>,
        one: Option<&str>,
    ) -> Result<bool, SubmissionError> {
        if let Some(asked) = asked {
            return Ok(asked);
        }
        if one.is_none() || self.tracker.is_none() {
            return Ok(false);
        }
        Ok(self
            .projects
            .get(&self.pool, project)
            .await
            .map_err(anyhow::Error::from)?
            .is_some_and(|p| p.unsubscribe_default))
    }

    /// `List-Unsubscribe` and `List-Unsubscribe-Post` for the one recipient of message `id`;
    /// refused when the server has no `tracking.base_url` to put in the link.
    fn unsubscribe_headers(
        &self,
        project: Uuid,
        id: Uuid,
        to: &str,
    ) -> Result<Vec<(String, String)>, SubmissionError> {
        let tracker = self.tracker.as_ref().ok_or_else(|| {
            SubmissionError::validation(
                "unsubscribe",
                "one-click unsubscribe needs the server's tracking.base_url, which is not set",
            )
        })?;
        Ok(tracker.unsubscribe_headers(project, id, to))
    }

    /// Validate, render and commit one message.
    pub async fn submit(
        &self,
        key: &AuthenticatedKey,
        request: impl Draft,
    ) -> Result<Accepted, SubmissionError> {
        let prepared = self.prepare(key, request).await?;
        the_one(self.commit(key, vec![prepared]).await?)
    }

    /// Commits one submitted message of `project_id` (sent with `key`, unless it came from a
    /// trusted network) in the same statement as HTTP sends, and wakes the workers. `limit` is
    /// the transport's size limit: it applies to the message as stored, after tracking.
    pub async fn commit_raw(
        &self,
        project_id: Uuid,
        key: Option<&AuthenticatedKey>,
        raw: RawMessage,
        limit: usize,
    ) -> Result<Accepted, SubmissionError> {
        self.check_sender_domain(project_id, crate::delivery::dkim::from_domain(&raw.mime))
            .await?;
        let mut mime = raw.mime;
        if self.scanner.is_some() {
            // Only the scanners say what they found.
            mime = scan::strip_headers(&mime).into_owned();
        }
        // The bytes stored: with tracking, the HTML parts instrumented, so the size limit
        // applies to them. Checked before anything is scanned.
        let mut tracked = None;
        if let Some(tracker) = &self.tracker {
            let choice = tracker
                .choice(project_id, raw.track.unwrap_or_default())
                .await
                .map_err(anyhow::Error::from)?;
            if choice != (false, false) {
                let bytes = tracker.mime(&mime, raw.id, choice);
                if bytes.len() > limit {
                    return Err(SubmissionError::TooLarge(format!(
                        "the message is {} bytes once click and open tracking rewrote it, over the limit of {limit}",
                        bytes.len()
                    )));
                }
                tracked = Some(bytes);
            }
        }
        // Scanned as the client sent it, links and all.
        let screened = self
            .screen(
                project_id,
                raw.id,
                &mime,
                || {
                    let rcpts = raw.recipients.iter().map(|(_, a)| a.as_str());
                    (raw.from.as_str(), rcpts.collect())
                },
                None,
            )
            .await?;
        let mut headers = screened.headers;
        let one = match raw.recipients.as_slice() {
            [(_, to)] => Some(to.as_str()),
            _ => None,
        };
        let asked = raw
            .unsubscribe
            .or(has_list_unsubscribe(&mime).then_some(false));
        if self.unsubscribe(project_id, asked, one).await? {
            let Some(to) = one else {
                return Err(SubmissionError::validation(
                    "X-Mailgate-Unsubscribe",
                    ONE_RECIPIENT,
                ));
            };
            let added = self.unsubscribe_headers(project_id, raw.id, to)?;
            let stored = tracked.as_ref().unwrap_or(&mime).len();
            let size = stored + header_bytes(&added);
            if size > limit {
                return Err(SubmissionError::TooLarge(format!(
                    "the message is {size} bytes with its unsubscribe headers, over the limit of {limit}"
                )));
            }
            headers.extend(added);
        }
        let mime = scan::prepend_headers(&tracked.unwrap_or(mime), &headers);
        let message = AcceptedMessage {
            id: raw.id,
            by: self.submitter(project_id, key),
            metadata: serde_json::to_value(&raw.metadata).map_err(anyhow::Error::from)?,
            from: raw.from.as_str().to_string(),
            subject: raw.subject,
            message_id: raw.message_id,
            mime,
            tags: raw.tags,
            relay: None,
            send_at: None,
            hold: screened.hold,
            scan: screened.scan,
            recipients: raw
                .recipients
                .iter()
                .map(|(kind, addr)| (addr.as_str().to_string(), kind.as_str()))
                .collect(),
        };
        the_one(self.commit_accepted(project_id, vec![message]).await?)
    }
}

/// A message submitted as MIME (SMTP): its envelope, and the bytes to relay as they are.
pub struct RawMessage {
    pub id: Uuid,
    /// The envelope sender (MAIL FROM), used as the return path at relay time.
    pub from: EmailAddress,
    /// Envelope recipients, each once; the kind says whether the headers show it (To, Cc).
    pub recipients: Vec<(RecipientKind, EmailAddress)>,
    /// The bytes to store and relay.
    pub mime: Vec<u8>,
    /// `<…>`, as found in the message or as added.
    pub message_id: String,
    pub subject: String,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// `X-Mailgate-Track`, if the message had one; otherwise the project's defaults.
    pub track: Option<Track>,
    /// `X-Mailgate-Unsubscribe: one-click`: add RFC 8058 headers for its one recipient;
    /// `None` (no such header) takes the project's default.
    pub unsubscribe: Option<bool>,
}

/// Why `unsubscribe` needs a message of one recipient: its link names the address it
/// unsubscribes, and one copy of the MIME goes to every recipient of a message.
pub const ONE_RECIPIENT: &str = "one-click unsubscribe needs exactly one recipient in to, cc and bcc together (the link names the address it unsubscribes); send one message per recipient, e.g. with POST /v1/emails/batch";

/// Whether the header section of `mime` has a `List-Unsubscribe` or `List-Unsubscribe-Post`
/// field of the sender's own.
fn has_list_unsubscribe(mime: &[u8]) -> bool {
    let end = mime
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(mime.len());
    mime[..end].split(|b| *b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((name, _)) =
            line.split_at_checked(line.iter().position(|b| *b == b':').unwrap_or(0))
        else {
            return false;
        };
        // Obsolete syntax allows blanks before the colon.
        let name = name.trim_ascii_end();
        name.eq_ignore_ascii_case(b"list-unsubscribe")
            || name.eq_ignore_ascii_case(b"list-unsubscribe-post")
    })
}

/// The bytes `scan::prepend_headers` adds for `headers` (`Name: value` and CRLF each).
fn header_bytes(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
}

/// The answer to a commit of one message.
fn the_one(mut accepted: Vec<Accepted>) -> Result<Accepted, SubmissionError> {
    accepted
        .pop()
        .ok_or_else(|| SubmissionError::Internal(anyhow::anyhow!("commit returned no answer")))
}

#[cfg(test)]
mod tests {
    use super::has_list_unsubscribe;

    #[test]
    fn finds_a_list_unsubscribe_header_only_in_the_header_section() {
        assert!(has_list_unsubscribe(
            b"From: a@x.test\r\nlist-unsubscribe: <mailto:u@x.test>\r\n\r\nbody"
        ));
        assert!(has_list_unsubscribe(
            b"From: a@x.test\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nx"
        ));
        assert!(!has_list_unsubscribe(
            b"From: a@x.test\r\nList-Id: x\r\n\r\nList-Unsubscribe: in the body\r\n"
        ));
        assert!(!has_list_unsubscribe(
            b"From: a@x.test\r\nList-Unsubscribed: no\r\n\r\nx"
        ));
        assert!(has_list_unsubscribe(
            b"From: a@x.test\r\nList-Unsubscribe : <mailto:u@x.test>\r\n\r\nx"
        ));
    }
}
