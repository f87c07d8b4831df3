//! Registration rules that need the network, shared by every way a client is registered.

use crate::fetch::Fetcher;
use crate::model::{Client, SubjectType};
use crate::protocol::subject;

/// Core 8.1: settles the sector a pairwise client's subjects are computed for, fetching its
/// `sector_identifier_uri` (a JSON array of URIs that must list every redirect URI).
pub async fn settle_sector_identifier(client: &mut Client, fetcher: &Fetcher) -> Result<(), String> {
    let metadata = &mut client.metadata;
    if metadata.subject_type != SubjectType::Pairwise {
        if metadata.sector_identifier_uri.is_some() {
            return Err("a sector_identifier_uri is only used with pairwise subjects".into());
        }
        metadata.sector_identifier = None;
        return Ok(());
    }
    let listed = match &metadata.sector_identifier_uri {
        Some(uri) => {
            let listed: Vec<String> = fetcher.json(uri).await.map_err(|e| format!("sector_identifier_uri: {e}"))?;
            Some((uri.as_str(), listed))
        }
        None => None,
    };
    let sector = subject::sector_identifier(&client.redirect_uris, listed.as_ref().map(|(u, l)| (*u, l.as_slice())))?;
    client.metadata.sector_identifier = Some(sector);
    Ok(())
}
