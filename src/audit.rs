//! The audit log: security events written to the store (for `oxid audit list`) and as structured log
//! lines (target `audit`), for operators. An event that cannot be stored is logged as an error but does
//! not fail what it describes: the user's sign-in does not depend on the audit table.

use crate::model::AuditEvent;
use crate::store::AuditStore;

pub async fn record(store: &dyn AuditStore, event: AuditEvent) {
    tracing::info!(
        target: "audit",
        kind = event.kind.as_str(),
        user = event.username.as_deref().unwrap_or("-"),
        sub = event.user_id.as_deref().unwrap_or("-"),
        client = event.client_id.as_deref().unwrap_or("-"),
        ip = event.ip.as_deref().unwrap_or("-"),
        detail = %event.detail,
        "audit event"
    );
    if let Err(e) = store.record_audit_event(&event).await {
        tracing::error!(error = %e, kind = event.kind.as_str(), "could not store an audit event");
    }
}
