//! The domains the inbound listener takes mail for, and in which role: the bounce domains
//! (VERP return paths) and the projects' inbound domains; every other one is foreign.

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::projects;

/// What a recipient domain of the inbound listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainRole {
    /// `bounce.domain` or a project's bounce domain: VERP return paths.
    Bounce,
    /// A project's inbound domain.
    Inbound(Uuid),
    /// Anything else: refused, never relayed.
    Foreign,
}

/// The domains mailgate takes mail for, from config and the projects' settings.
#[derive(Clone)]
pub struct Domains {
    pool: PgPool,
    /// `bounce.domain`, lower case.
    pub(super) bounce: Option<String>,
}

impl Domains {
    pub fn new(pool: PgPool, bounce: Option<&str>) -> Self {
        Self {
            pool,
            bounce: bounce.map(str::to_ascii_lowercase),
        }
    }

    pub async fn role(&self, domain: &str) -> sqlx::Result<DomainRole> {
        let domain = domain.to_ascii_lowercase();
        if self.bounce.as_deref() == Some(domain.as_str())
            || projects::is_bounce_domain(&self.pool, &domain).await?
        {
            return Ok(DomainRole::Bounce);
        }
        Ok(
            match projects::by_inbound_domain(&self.pool, &domain).await? {
                Some(project) => DomainRole::Inbound(project),
                None => DomainRole::Foreign,
            },
        )
    }
}
