//! The PostgreSQL backend, for several interchangeable nodes sharing one database.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{FromRow, Row};

use super::sql::{from_json, parse, sql_store, to_json, unique_violation};
use super::*;
use crate::types::ClientId;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL handles concurrent writers itself.
    writer: PgPool,
}

impl PgStore {
    /// Connects to `url` and applies the embedded migrations (sqlx takes an advisory lock, so nodes
    /// starting together migrate once).
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(5)).connect(url).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { writer: pool.clone(), pool })
    }
}

sql_store!(PgStore, PgRow);
