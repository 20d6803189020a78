//! People shown by name, not by id: the best label of each person a page lists (their
//! name, else an e-mail, else another identifier), read in one go per page.

use maud::{html, Markup};
use rapport_domain::model::ProfileView;
use rapport_domain::resolve::ProfileId;
use rapport_domain::IdentityKind;
use rapport_store::{DynStore, StoreError};
use std::collections::HashMap;

pub struct Names(HashMap<ProfileId, String>);

/// A person's label: `name`, else first and last names, else an e-mail, else the first
/// identifier that is not a cookie id, else `Person <id>`.
pub fn label(p: &ProfileView) -> String {
    let t = |k: &str| p.traits.get(k).and_then(|v| v.as_str()).map(str::trim);
    if let Some(n) = t("name").filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    let first = t("first_name").or(t("firstName")).unwrap_or("");
    let last = t("last_name").or(t("lastName")).unwrap_or("");
    let both = format!("{first} {last}").trim().to_string();
    if !both.is_empty() {
        return both;
    }
    p.identities
        .iter()
        .find(|i| i.kind == IdentityKind::Email)
        .or_else(|| {
            p.identities
                .iter()
                .find(|i| i.kind != IdentityKind::AnonymousId)
        })
        .map(|i| i.value.clone())
        .unwrap_or_else(|| format!("Person {}", p.id))
}

impl Names {
    /// The labels of `ids` (merged ids are labelled as the person they are part of).
    pub async fn of(
        store: &DynStore,
        ids: impl IntoIterator<Item = ProfileId>,
    ) -> Result<Names, StoreError> {
        let mut ids: Vec<ProfileId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = HashMap::new();
        if !ids.is_empty() {
            for p in store.profiles(ids).await? {
                let l = label(&p);
                for m in &p.member_ids {
                    out.insert(*m, l.clone());
                }
                out.insert(p.id, l);
            }
        }
        Ok(Names(out))
    }

    pub fn get(&self, id: ProfileId) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("Person {id}"))
    }

    /// A link to the person's 360 page, by name.
    pub fn link(&self, id: ProfileId) -> Markup {
        html! { a href=(format!("/people/{id}")) title=(format!("#{id}")) { (self.get(id)) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(traits: serde_json::Value) -> ProfileView {
        serde_json::from_value(json!({
            "id": 7, "member_ids": [7], "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "traits": traits, "identities": [],
            "consents": [], "merges": []
        }))
        .unwrap()
    }

    #[test]
    fn a_person_is_labelled_by_the_best_thing_known() {
        assert_eq!(label(&view(json!({"name": "Ann Lee"}))), "Ann Lee");
        assert_eq!(
            label(&view(json!({"firstName": "Ann", "lastName": "Lee"}))),
            "Ann Lee"
        );
        assert_eq!(label(&view(json!({"first_name": "Ann"}))), "Ann");
        assert_eq!(label(&view(json!({"name": "  "}))), "Person 7");
    }
}
