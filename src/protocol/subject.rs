//! Subject identifiers (Core 8): `public` (the user's one stable id) or `pairwise` (a different,
//! stable value per sector, so that clients of different sectors cannot correlate users).

use crate::crypto;
use crate::model::{Client, RedirectUri, SubjectType};

/// The `sub` `client` sees for the user whose stable id is `user_id` (Core 8.1: pairwise values are
/// derived from the sector identifier, the local id and a salt the OP keeps secret).
pub fn subject_for(client: &Client, user_id: &str, salt: &str) -> String {
    match (client.metadata.subject_type, &client.metadata.sector_identifier) {
        (SubjectType::Pairwise, Some(sector)) => pairwise(sector, user_id, salt),
        _ => user_id.to_owned(),
    }
}

fn pairwise(sector: &str, user_id: &str, salt: &str) -> String {
    // Length-prefixed so that no two (sector, user) pairs hash the same input.
    let input = format!("{}:{sector}{}:{user_id}{salt}", sector.len(), user_id.len());
    crypto::b64url(&crypto::sha256(input.as_bytes()))
}

/// Core 8.1: the sector identifier is the host of `sector_identifier_uri` when given (whose document
/// must list every redirect URI); otherwise the host of the redirect URIs, which must then share one.
pub fn sector_identifier(
    redirect_uris: &[RedirectUri],
    sector_identifier_uri: Option<(&str, &[String])>,
) -> Result<String, String> {
    let host = |uri: &str| url::Url::parse(uri).ok().and_then(|u| u.host_str().map(str::to_owned));
    if let Some((uri, listed)) = sector_identifier_uri {
        let missing: Vec<&str> =
            redirect_uris.iter().map(RedirectUri::as_str).filter(|r| !listed.iter().any(|l| l == r)).collect();
        if !missing.is_empty() {
            return Err(format!("the sector_identifier_uri document does not list {}", missing.join(", ")));
        }
        return host(uri).ok_or_else(|| "sector_identifier_uri has no host".to_owned());
    }
    let mut hosts: Vec<String> = redirect_uris.iter().filter_map(|r| host(r.as_str())).collect();
    hosts.dedup();
    match hosts.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("pairwise subjects need a redirect URI".into()),
        _ => Err("redirect URIs on several hosts need a sector_identifier_uri (Core 8.1)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(list: &[&str]) -> Vec<RedirectUri> {
        list.iter().map(|u| u.parse().unwrap()).collect()
    }

    #[test]
    fn pairwise_subjects_are_stable_per_sector_and_differ_across_sectors() {
        let a = pairwise("rp.example", "u1", "salt");
        assert_eq!(a, pairwise("rp.example", "u1", "salt"));
        assert_ne!(a, pairwise("other.example", "u1", "salt"));
        assert_ne!(a, pairwise("rp.example", "u2", "salt"));
        assert_ne!(a, pairwise("rp.example", "u1", "pepper"));
        assert_ne!(pairwise("ab", "c", ""), pairwise("a", "bc", ""), "no ambiguity at the boundary");
    }

    #[test]
    fn sector_identifier_rules() {
        let same_host = uris(&["https://rp.example/a", "https://rp.example/b"]);
        assert_eq!(sector_identifier(&same_host, None).unwrap(), "rp.example");
        let two_hosts = uris(&["https://a.example/cb", "https://b.example/cb"]);
        let err = sector_identifier(&two_hosts, None).unwrap_err();
        assert_eq!(err, "redirect URIs on several hosts need a sector_identifier_uri (Core 8.1)");
        let listed = vec!["https://a.example/cb".to_owned(), "https://b.example/cb".to_owned()];
        let doc = Some(("https://sector.example/s.json", listed.as_slice()));
        assert_eq!(sector_identifier(&two_hosts, doc).unwrap(), "sector.example");
        let partial = vec!["https://a.example/cb".to_owned()];
        let err = sector_identifier(&two_hosts, Some(("https://s.example/x", partial.as_slice()))).unwrap_err();
        assert!(err.contains("b.example"), "{err}");
    }
}
