//! The people directory (`[people.NAME]`): one name per person, and how each chat tool and GitHub
//! knows them. Routes name people (`mention = ["lin"]`) or the labels whose values are people
//! (`mention_from_labels = ["owner"]`); Sentry assignees are found by e-mail.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the tools herald sends to know one person. Every field is optional: a tool whose id is
/// missing shows the name as text, without notifying anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// The mobile number DingTalk's `atMobiles` and WeCom's `mentioned_mobile_list` take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk_mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk_user_id: Option<String>,
    /// Feishu's `open_id` (`ou_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feishu_open_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom_user_id: Option<String>,
    /// A GitHub login: assigned to the issues herald opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    /// Addresses a Sentry assignee may have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
}

/// Everyone of `[people]`, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct People(pub BTreeMap<String, Person>);

impl People {
    pub fn get(&self, name: &str) -> Option<&Person> {
        self.0.get(name)
    }

    /// The person one of whose addresses is `email` (compared without case).
    pub fn by_email(&self, email: &str) -> Option<(&str, &Person)> {
        self.0.iter().find_map(|(name, person)| {
            person
                .emails
                .iter()
                .any(|known| known.eq_ignore_ascii_case(email.trim()))
                .then_some((name.as_str(), person))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_name_and_by_email() {
        let people: People = toml::from_str(
            "[lin]\ndingtalk_mobile = \"13900001111\"\nemails = [\"Lin@Example.com\"]\n",
        )
        .unwrap();
        assert_eq!(
            people.get("lin").unwrap().dingtalk_mobile.as_deref(),
            Some("13900001111")
        );
        assert_eq!(people.by_email("lin@example.com").unwrap().0, "lin");
        assert!(people.by_email("bob@example.com").is_none());
        assert!(toml::from_str::<People>("[lin]\nphone = \"1\"\n").is_err());
    }
}
