//! PostgreSQL: lone access tokens (`client_credentials`, token exchange) are inserted in batches.
//!
//! Each such request used to be its own statement and commit, and the database server's per-statement
//! and per-commit work was what limited `client_credentials`. Requests hand their token to one task,
//! which inserts everything that has queued up with a single statement (one round trip, one commit)
//! and tells each request whether its row went in. While a batch runs the next one fills, so the batch
//! grows with the load and an idle server still inserts at once. Nothing is acknowledged before its
//! batch has committed; a batch that fails is retried row by row, so one bad row fails alone.

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::queries as q;
use super::{StoreError, StoreResult, to_json};
use crate::model::AccessToken;

/// The most tokens one statement inserts.
const MAX_BATCH: usize = 256;

struct Queued {
    hash: String,
    token: AccessToken,
    /// Whether the row went in (false: its grant has been revoked).
    done: oneshot::Sender<StoreResult<bool>>,
}

#[derive(Clone)]
pub(super) struct AccessTokenBatcher {
    queue: mpsc::UnboundedSender<Queued>,
}

impl AccessTokenBatcher {
    /// Starts the inserting task; it ends when the batcher and its clones are dropped.
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queued));
        Self { queue }
    }

    /// Inserts the token unless its grant has been revoked (false then), once its batch has committed.
    pub(super) async fn insert(&self, hash: &str, token: &AccessToken) -> StoreResult<bool> {
        let (done, outcome) = oneshot::channel();
        let queued = Queued { hash: hash.to_owned(), token: token.clone(), done };
        let closed = || StoreError::Io("database error: the token writer has stopped".into());
        self.queue.send(queued).map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }
}

async fn run(pool: PgPool, mut queued: mpsc::UnboundedReceiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match insert(&pool, &batch).await {
            Ok(inserted) => {
                for row in batch.drain(..) {
                    let went_in = inserted.contains(&row.hash);
                    let _ = row.done.send(Ok(went_in));
                }
            }
            Err(e) if batch.len() == 1 => {
                let row = batch.pop().expect("one row");
                let _ = row.done.send(Err(e));
            }
            Err(_) => {
                for row in batch.drain(..) {
                    let outcome = insert(&pool, std::slice::from_ref(&row)).await.map(|i| !i.is_empty());
                    let _ = row.done.send(outcome);
                }
            }
        }
    }
}

/// One statement for `rows`; returns the hashes of the rows inserted.
async fn insert(pool: &PgPool, rows: &[Queued]) -> StoreResult<Vec<String>> {
    let column = |f: fn(&Queued) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&AccessToken) -> Option<i64>| rows.iter().map(|r| f(&r.token)).collect::<Vec<_>>();
    let inserted = sqlx::query_scalar(q::INSERT_ACCESS_TOKENS_PG)
        .bind(column(|r| Some(r.hash.clone())))
        .bind(column(|r| Some(r.token.client_id.as_str().to_owned())))
        .bind(column(|r| r.token.user_id.clone()))
        .bind(column(|r| Some(r.token.scope.to_string())))
        .bind(column(|r| r.token.grant_id.clone()))
        .bind(number(|t| Some(t.expires_at)))
        .bind(column(|r| r.token.claims.as_ref().map(to_json)))
        .bind(column(|r| r.token.jkt.clone()))
        .bind(column(|r| (!r.token.audience.is_empty()).then(|| to_json(&r.token.audience))))
        .bind(number(|t| t.issued_at))
        .fetch_all(pool)
        .await?;
    Ok(inserted)
}
