//! Routing: which targets an alert goes to.
//!
//! Routes are tried in order; the first that matches decides, unless it says `continue`, in which
//! case later routes may add targets too (Alertmanager's semantics). Without any route, every
//! target receives every alert of the resources people expect to hear about.
//!
//! Resources that are not alerts about errors (comments, installations, Seer, build artifacts,
//! and whatever Sentry adds next) are stored but reach a target only through a route that names
//! their resource: nobody wants a chat group to fill with installation notices by default.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use crate::alert::{Alert, Level};
use crate::people::{People, Person};

/// Resources routed without being named in a route's `resource` list (`alert`: Alertmanager's
/// and Grafana's notifications).
pub const ROUTED_BY_DEFAULT: [&str; 5] = ["issue", "event_alert", "metric_alert", "error", "alert"];

/// One `[[routes]]` entry: alerts that match go to `targets`; `continue` lets later routes match too.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub targets: Vec<String>,
    #[serde(default, rename = "match")]
    pub matcher: RouteMatch,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Phone numbers to @-mention in what this route sends (targets that support mentions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_mobiles: Vec<String>,
    /// User ids to @-mention in what this route sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_user_ids: Vec<String>,
    /// Levels at which this route @-mentions everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_all: Vec<Level>,
    /// People of `[people]` to @-mention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention: Vec<String>,
    /// Labels (Alertmanager, Grafana) or tags (Sentry) whose values name people to @-mention:
    /// `owner="lin"`, or several as `"lin,bob"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_from_labels: Vec<String>,
}

/// What a route matches. Each list, when not empty, must contain the alert's value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// `sentry`, `sentry_legacy_plugin`, `alertmanager`, `grafana`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// Exactly one of these levels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level: Vec<Level>,
    /// This level or a more severe one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Level>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release: Vec<String>,
    /// Tag values: every tag named here must have one of the listed values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Vec<String>>,
    /// Alertmanager's and Grafana's labels, as `tags` (the labels every alert of the group shares).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Vec<String>>,
    /// The Sentry alert rule that fired (issue alerts; metric alerts' rule name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<String>,
}

impl RouteMatch {
    /// The conditions in words, for the routing table: `project in [api], level >= error`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut list = |name: &str, values: &[String]| {
            if !values.is_empty() {
                parts.push(format!("{name} in [{}]", values.join(", ")));
            }
        };
        list("source", &self.source);
        list("resource", &self.resource);
        list("action", &self.action);
        list("project", &self.project);
        list("environment", &self.environment);
        list("release", &self.release);
        list("rule", &self.rule);
        for (tag, values) in &self.tags {
            list(&format!("tag {tag}"), values);
        }
        for (label, values) in &self.labels {
            list(&format!("label {label}"), values);
        }
        if !self.level.is_empty() {
            let levels: Vec<&str> = self.level.iter().map(|l| l.as_str()).collect();
            parts.push(format!("level in [{}]", levels.join(", ")));
        }
        if let Some(min) = self.min_level {
            parts.push(format!("level >= {min}"));
        }
        if self.resource.is_empty() {
            parts.insert(0, format!("resource in [{}]", ROUTED_BY_DEFAULT.join(", ")));
        }
        parts.join(", ")
    }
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<RouteConfig>,
    all_targets: Vec<String>,
    people: People,
    /// Label values that named nobody, each logged once.
    unknown_logged: Mutex<HashSet<String>>,
}

impl Router {
    /// A router over `routes`, for the targets named `all_targets` (which every alert goes to
    /// when there is no route), mentioning `people` as routes say.
    pub fn new(routes: &[RouteConfig], all_targets: Vec<String>, people: People) -> Self {
        Router {
            routes: routes.to_vec(),
            all_targets,
            people,
            unknown_logged: Mutex::new(HashSet::new()),
        }
    }

    /// The targets `alert` goes to, each once (in order of first mention), with the mentions of
    /// every matching route that named it.
    pub fn route(&self, alert: &Alert) -> Vec<Routed<'_>> {
        if self.routes.is_empty() {
            return if routed_by_default(alert) {
                let mentions = self.assignee(alert);
                self.all_targets
                    .iter()
                    .map(|target| Routed {
                        target,
                        mentions: mentions.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
        }
        let mut chosen: Vec<Routed<'_>> = Vec::new();
        for route in &self.routes {
            if !matches(route, alert) {
                continue;
            }
            let mentions = self.mentions_of(route, alert);
            for target in &route.targets {
                match chosen.iter_mut().find(|r| r.target == target) {
                    Some(existing) => existing.mentions.merge(&mentions),
                    None => chosen.push(Routed {
                        target,
                        mentions: mentions.clone(),
                    }),
                }
            }
            if !route.continue_matching {
                break;
            }
        }
        chosen
    }

    /// Whom `route` @-mentions for `alert`: its raw ids, its people, the people its labels name,
    /// and the Sentry assignee when the directory knows their e-mail.
    fn mentions_of(&self, route: &RouteConfig, alert: &Alert) -> Mentions {
        let mut mentions = self.assignee(alert);
        mentions.merge(&Mentions {
            mobiles: route.mention_mobiles.clone(),
            user_ids: route.mention_user_ids.clone(),
            all: alert.level.is_some_and(|l| route.mention_all.contains(&l)),
            ..Mentions::default()
        });
        for name in &route.mention {
            if let Some(person) = self.people.get(name) {
                mentions.add_person(name, person);
            }
        }
        for name in label_values(alert, &route.mention_from_labels) {
            match self.people.get(&name) {
                Some(person) => mentions.add_person(&name, person),
                None => {
                    let mut logged = self
                        .unknown_logged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if logged.len() < 10_000 && logged.insert(name.clone()) {
                        tracing::warn!(
                            name = %name,
                            "a label names someone who is not in [people]: shown as text, nobody is notified"
                        );
                    }
                    if !mentions.unknown.contains(&name) {
                        mentions.unknown.push(name);
                    }
                }
            }
        }
        mentions
    }

    fn assignee(&self, alert: &Alert) -> Mentions {
        let mut mentions = Mentions::default();
        let email = alert.assignee.as_ref().and_then(|a| a.email.as_deref());
        if let Some((name, person)) = email.and_then(|email| self.people.by_email(email)) {
            mentions.add_person(name, person);
        }
        mentions
    }

    /// Just the target names of [`Router::route`].
    pub fn targets_for(&self, alert: &Alert) -> Vec<&str> {
        self.route(alert).into_iter().map(|r| r.target).collect()
    }
}

/// One target an alert goes to, and whom to @-mention there.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed<'r> {
    pub target: &'r str,
    pub mentions: Mentions,
}

/// The values of `labels` (each may list several names, split by commas or spaces): from the
/// alert's tags, and from every alert of its group.
fn label_values(alert: &Alert, labels: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let members = alert.group.iter().flat_map(|g| &g.members);
    let pairs = alert
        .tags
        .iter()
        .chain(members.flat_map(|member| &member.labels));
    for (key, value) in pairs {
        if !labels.contains(key) {
            continue;
        }
        for name in value
            .split([',', ' ', ';'])
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !found.iter().any(|known| known == name) {
                found.push(name.to_string());
            }
        }
    }
    found
}

/// People to @-mention, as routes ask (targets without mentions ignore it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// People of the directory, as it knew them when the alert was accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<MentionedPerson>,
    /// Names a label gave that the directory does not know: shown as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// A person to mention, with the ids each tool knows them by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionedPerson {
    pub name: String,
    pub ids: Person,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.mobiles.is_empty()
            && self.user_ids.is_empty()
            && !self.all
            && self.people.is_empty()
            && self.unknown.is_empty()
    }

    fn add_person(&mut self, name: &str, person: &Person) {
        if !self.people.iter().any(|p| p.name == name) {
            let mut ids = person.clone();
            ids.emails.clear();
            self.people.push(MentionedPerson {
                name: name.to_string(),
                ids,
            });
        }
    }

    /// The ids one tool knows the mentioned people by (`pick` chooses the field).
    pub fn ids_of_people<'a>(
        &'a self,
        pick: impl Fn(&Person) -> Option<&String> + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.people
            .iter()
            .filter_map(move |p| pick(&p.ids).map(String::as_str))
    }

    /// Names to show as text in a tool that does not know these people (`pick` as above): no
    /// one is notified, but the message still says whom it is for.
    pub fn names_without<'a>(
        &'a self,
        pick: impl Fn(&Person) -> Option<&String> + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.people
            .iter()
            .filter(move |p| pick(&p.ids).is_none())
            .map(|p| p.name.as_str())
            .chain(self.unknown.iter().map(String::as_str))
    }

    /// `@13800000000 @user @lin @all`, for people reading what a route does.
    pub fn describe(&self) -> String {
        let mut people: Vec<String> = self
            .mobiles
            .iter()
            .chain(&self.user_ids)
            .chain(self.people.iter().map(|p| &p.name))
            .chain(&self.unknown)
            .map(|who| format!("@{who}"))
            .collect();
        if self.all {
            people.push("@all".into());
        }
        people.join(" ")
    }

    /// Adds `other`'s people, each once.
    pub fn merge(&mut self, other: &Mentions) {
        for mobile in &other.mobiles {
            if !self.mobiles.contains(mobile) {
                self.mobiles.push(mobile.clone());
            }
        }
        for user in &other.user_ids {
            if !self.user_ids.contains(user) {
                self.user_ids.push(user.clone());
            }
        }
        for person in &other.people {
            self.add_person(&person.name, &person.ids);
        }
        for name in &other.unknown {
            if !self.unknown.contains(name) {
                self.unknown.push(name.clone());
            }
        }
        self.all |= other.all;
    }
}

fn routed_by_default(alert: &Alert) -> bool {
    ROUTED_BY_DEFAULT.contains(&alert.resource.as_str())
}

fn matches(route: &RouteConfig, alert: &Alert) -> bool {
    let m = &route.matcher;
    let listed = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|item| item == v))
    };
    let resource_ok = if m.resource.is_empty() {
        routed_by_default(alert)
    } else {
        m.resource.contains(&alert.resource)
    };
    let tags_ok = |wanted: &BTreeMap<String, Vec<String>>| {
        wanted.iter().all(|(key, values)| {
            let value = alert.tag(key);
            value.is_some() && listed(values, value)
        })
    };
    resource_ok
        && listed(&m.source, Some(alert.source.as_str()))
        && listed(&m.action, Some(&alert.action))
        && listed(&m.project, alert.project.as_deref())
        && listed(&m.environment, alert.environment.as_deref())
        && (m.level.is_empty() || alert.level.is_some_and(|l| m.level.contains(&l)))
        && m.min_level
            .is_none_or(|min| alert.level.is_some_and(|l| l >= min))
        && listed(&m.release, alert.release.as_deref())
        && listed(&m.rule, alert.triggered_rule.as_deref())
        && tags_ok(&m.tags)
        && tags_ok(&m.labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentry::parse_integration_payload;

    /// Routes written as in a config file's `[[routes]]`, over targets a, b and c.
    fn router(routes: &str) -> Router {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            routes: Vec<RouteConfig>,
        }
        let file: File = toml::from_str(routes).unwrap();
        Router::new(
            &file.routes,
            vec!["a".into(), "b".into(), "c".into()],
            People::default(),
        )
    }

    fn issue(level: &str, project: &str) -> Alert {
        let body = format!(
            r#"{{"action":"created","data":{{"issue":{{"id":"1","level":"{level}","project":{{"slug":"{project}"}}}}}}}}"#
        );
        parse_integration_payload("issue", body.as_bytes()).unwrap()
    }

    #[test]
    fn without_routes_every_target_hears_about_errors_but_not_comments() {
        let router = router("");
        assert_eq!(router.targets_for(&issue("error", "web")), ["a", "b", "c"]);
        let comment =
            parse_integration_payload("comment", br#"{"action":"created","data":{}}"#).unwrap();
        assert!(router.targets_for(&comment).is_empty());
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let router = router(
            "[[routes]]\ntargets = [\"a\"]\nmatch = { min_level = \"error\" }\ncontinue = true\n\
             [[routes]]\ntargets = [\"b\"]\nmatch = { project = [\"web\"] }\n\
             [[routes]]\ntargets = [\"c\"]\n",
        );
        assert_eq!(router.targets_for(&issue("fatal", "web")), ["a", "b"]);
        assert_eq!(router.targets_for(&issue("warning", "web")), ["b"]);
        assert_eq!(router.targets_for(&issue("warning", "api")), ["c"]);
        assert_eq!(router.targets_for(&issue("error", "api")), ["a", "c"]);
    }

    #[test]
    fn other_resources_only_when_named() {
        let router =
            router("[[routes]]\ntargets = [\"c\"]\nmatch = { resource = [\"comment\"] }\n");
        let comment =
            parse_integration_payload("comment", br#"{"action":"created","data":{}}"#).unwrap();
        assert_eq!(router.targets_for(&comment), ["c"]);
        assert!(router.targets_for(&issue("error", "web")).is_empty());
    }

    fn event(json: &str) -> Alert {
        parse_integration_payload("event_alert", json.as_bytes()).unwrap()
    }

    #[test]
    fn release_tags_and_rule() {
        let router = router(
            "[[routes]]\ntargets = [\"a\"]\nmatch = { release = [\"2.0\"], tags = { region = [\"eu\", \"us\"] } }\n\
             [[routes]]\ntargets = [\"b\"]\nmatch = { rule = [\"Payments down\"] }\n",
        );
        let tagged = |release: &str, region: &str, rule: &str| {
            event(&format!(
                r#"{{"action":"triggered","data":{{"triggered_rule":"{rule}","event":{{"issue_id":"1","level":"error","release":"{release}","tags":[["region","{region}"]]}}}}}}"#
            ))
        };
        assert_eq!(router.targets_for(&tagged("2.0", "eu", "x")), ["a"]);
        assert!(router.targets_for(&tagged("2.0", "asia", "x")).is_empty());
        assert!(router.targets_for(&tagged("1.9", "us", "x")).is_empty());
        assert_eq!(
            router.targets_for(&tagged("1.9", "us", "Payments down")),
            ["b"]
        );
        let untagged =
            event(r#"{"action":"triggered","data":{"event":{"issue_id":"1","release":"2.0"}}}"#);
        assert!(
            router.targets_for(&untagged).is_empty(),
            "a tag a route asks for must be there"
        );
    }

    #[test]
    fn mentions_of_every_matching_route_are_merged() {
        let router = router(
            "[[routes]]\ntargets = [\"a\"]\nmatch = { project = [\"pay\"] }\nmention_user_ids = [\"owner\"]\ncontinue = true\n\
             [[routes]]\ntargets = [\"a\", \"b\"]\nmention_all = [\"fatal\"]\nmention_mobiles = [\"138\"]\n",
        );
        let routed = router.route(&issue("fatal", "pay"));
        assert_eq!(routed.len(), 2);
        assert_eq!(routed[0].target, "a");
        assert_eq!(
            routed[0].mentions,
            Mentions {
                mobiles: vec!["138".into()],
                user_ids: vec!["owner".into()],
                all: true,
                ..Mentions::default()
            }
        );
        assert_eq!(
            routed[1].mentions,
            Mentions {
                mobiles: vec!["138".into()],
                all: true,
                ..Mentions::default()
            }
        );
        let routed = router.route(&issue("error", "web"));
        assert_eq!(
            routed[0].mentions,
            Mentions {
                mobiles: vec!["138".into()],
                ..Mentions::default()
            }
        );
    }

    #[test]
    fn exact_levels() {
        let router = router("[[routes]]\ntargets = [\"a\"]\nmatch = { level = [\"warning\"] }\n");
        assert_eq!(router.targets_for(&issue("warning", "x")), ["a"]);
        assert!(router.targets_for(&issue("error", "x")).is_empty());
    }

    #[test]
    fn people_by_name_by_label_and_by_sentry_assignee() {
        let people: People = toml::from_str(
            "[lin]\ndingtalk_mobile = \"139\"\nemails = [\"lin@example.com\"]\n\
             [bob]\nwecom_user_id = \"bob\"\n",
        )
        .unwrap();
        let routes: Vec<RouteConfig> = vec![toml::from_str(
            "targets = [\"a\"]\nmention = [\"bob\"]\nmention_from_labels = [\"owner\"]\n",
        )
        .unwrap()];
        let router = Router::new(&routes, vec!["a".into()], people);
        let tagged = event(
            r#"{"action":"triggered","data":{"event":{"issue_id":"1","tags":[["owner","lin, carol"]]}}}"#,
        );
        let mentions = router.route(&tagged).remove(0).mentions;
        let names: Vec<&str> = mentions.people.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["bob", "lin"]);
        assert_eq!(mentions.unknown, ["carol"]);
        assert!(
            mentions.people[1].ids.emails.is_empty(),
            "no e-mail goes into a job"
        );
        assert_eq!(
            mentions
                .ids_of_people(|p| p.dingtalk_mobile.as_ref())
                .collect::<Vec<_>>(),
            ["139"]
        );
        assert_eq!(
            mentions
                .names_without(|p| p.dingtalk_mobile.as_ref())
                .collect::<Vec<_>>(),
            ["bob", "carol"]
        );

        let assigned = parse_integration_payload(
            "issue",
            br#"{"action":"assigned","data":{"issue":{"id":"1"},"assignee":{"type":"user","name":"Lin","email":"LIN@example.com"}}}"#,
        )
        .unwrap();
        let without_routes = Router::new(&[], vec!["a".into()], router.people.clone());
        let mentions = without_routes.route(&assigned).remove(0).mentions;
        assert_eq!(mentions.people.len(), 1);
        assert_eq!(mentions.people[0].name, "lin");
    }
}
