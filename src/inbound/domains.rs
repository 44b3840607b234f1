//! The domains the inbound listener takes mail for, and in which role: the bounce domains
//! (VERP return paths) and the projects' inbound domains; every other one is foreign.

use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{domains, projects};

/// What a recipient domain of the inbound listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainRole {
    /// `bounce.domain`, a project's bounce domain, or a sending domain's return-path
    /// subdomain: VERP return paths.
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
            || domains::is_return_path(&self.pool, None, &domain).await?
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

    /// Whether a return path at `domain` may name a recipient job of `project`: the
    /// project's bounce domain (`bounce_domain`; else the server's), or the return-path
    /// subdomain of one of its sending domains. Another project's is refused.
    pub async fn is_return_path_of(
        &self,
        project: Uuid,
        bounce_domain: Option<&str>,
        domain: &str,
    ) -> sqlx::Result<bool> {
        let domain = domain.to_ascii_lowercase();
        if bounce_domain
            .or(self.bounce.as_deref())
            .is_some_and(|d| d.eq_ignore_ascii_case(&domain))
        {
            return Ok(true);
        }
        domains::is_return_path(&self.pool, Some(project), &domain).await
    }
}
