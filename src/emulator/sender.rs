//! What Meta sends on its own: signed webhook deliveries (a Page change, a customer's
//! Messenger message) and the verification request of a subscription. Meta delivers a
//! field only when the app subscribed to it (app level) and is installed on the Page
//! with it (Page level); until the app has a subscription of its own, the configured
//! webhook address stands in for a callback set in the App Dashboard.

use base64::Engine as _;

use super::data::DEMO_CUSTOMER_PSID;
use super::{Shared, World};
use crate::clock::unix_now;
use crate::verify::{sign_sha1, sign_sha256};

/// How many outcomes are remembered for the editor's notices and history.
const ACTIVITY_KEPT: usize = 50;

/// What one Page change or customer message led to.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Increasing number; `/emulator?notice=N` shows this one.
    pub number: u64,
    pub page: String,
    /// The fields that changed (`messages` for a customer message).
    pub changed: Vec<String>,
    /// The webhook delivery, when one was sent.
    pub delivery: Option<DeliveryOutcome>,
    /// One line for the merchant: what happened.
    pub summary: String,
}

/// A webhook delivery the emulator made.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub callback_url: String,
    /// The exact bytes sent (and signed).
    pub body: String,
    /// The daemon's status and body, or the transport error.
    pub answer: Result<(u16, String), String>,
}

pub(super) enum Plan {
    /// No delivery: the changed fields and why not.
    Nothing(Vec<String>, String),
    Deliver {
        changed: Vec<String>,
        callback_url: String,
        body: String,
    },
}

/// The delivery for `changed` (field, new value) on `page`, when Meta would send one.
pub(super) fn plan_delivery(world: &World, page: &str, changed: Vec<(String, String)>) -> Plan {
    let names: Vec<String> = changed.iter().map(|(f, _)| f.clone()).collect();
    if changed.is_empty() {
        return Plan::Nothing(names, "Nothing changed; no webhook sent.".into());
    }
    let Some(page_fields) = world.installed.get(page) else {
        let why = "Saved. No webhook sent: pagesync is not installed on this Page yet (connect it first).";
        return Plan::Nothing(names, why.into());
    };
    let (callback_url, app_fields, include_values) = match &world.app_subscription {
        Some(sub) => (sub.callback_url.clone(), Some(&sub.fields), sub.include_values),
        None => (world.config.webhook_address.clone(), None, true),
    };
    let wanted: Vec<&(String, String)> =
        changed.iter().filter(|(f, _)| page_fields.contains(f) && app_fields.is_none_or(|a| a.contains(f))).collect();
    if wanted.is_empty() {
        let why = format!("Saved. No webhook sent: pagesync is not subscribed to {}.", names.join(" or "));
        return Plan::Nothing(names, why);
    }
    // Built by hand to keep Meta's key order (object, entry; id, time, changes).
    let detail = if include_values {
        let changes: Vec<String> = wanted
            .iter()
            .map(|(f, v)| format!("{{\"field\":{},\"value\":{}}}", json_string(f), json_string(v)))
            .collect();
        format!("\"changes\":[{}]", changes.join(","))
    } else {
        let fields: Vec<String> = wanted.iter().map(|(f, _)| json_string(f)).collect();
        format!("\"changed_fields\":[{}]", fields.join(","))
    };
    let entry = format!("{{\"id\":{},\"time\":{},{detail}}}", json_string(page), unix_now());
    Plan::Deliver {
        changed: names,
        callback_url,
        body: meta_wire(&format!("{{\"object\":\"page\",\"entry\":[{entry}]}}")),
    }
}

/// A Messenger delivery for a customer's `text` to `page`, when Meta would send one:
/// `messages` subscribed at both levels (the same callback rule as [`plan_delivery`]).
pub(super) fn plan_message(world: &World, page: &str, text: &str) -> Plan {
    let changed = vec!["messages".to_owned()];
    let not_sent =
        |why: &str| Plan::Nothing(changed.clone(), format!("The customer's message reached the Page. {why}"));
    if !world.installed.get(page).is_some_and(|fields| fields.iter().any(|f| f == "messages")) {
        return not_sent(
            "No webhook sent: pagesync is not installed on this Page with the messages field (connect it first, \
             with PAGESYNC_BOT_FIELDS naming messages).",
        );
    }
    let callback_url = match &world.app_subscription {
        Some(sub) if sub.fields.iter().any(|f| f == "messages") => sub.callback_url.clone(),
        Some(_) => return not_sent("No webhook sent: the app's webhook subscription does not include messages."),
        None => world.config.webhook_address.clone(),
    };
    // Meta stamps Messenger events in milliseconds; built by hand to keep Meta's key
    // order (object, entry; id, time, messaging; sender, recipient, timestamp, message).
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mid = format!("m_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()));
    let page_json = json_string(page);
    let body = meta_wire(&format!(
        "{{\"object\":\"page\",\"entry\":[{{\"id\":{page_json},\"time\":{millis},\"messaging\":[{{\"sender\":{{\"id\":{}}},\
         \"recipient\":{{\"id\":{page_json}}},\"timestamp\":{millis},\"message\":{{\"mid\":{},\"text\":{}}}}}]}}]}}",
        json_string(DEMO_CUSTOMER_PSID),
        json_string(&mid),
        json_string(text),
    ));
    Plan::Deliver { changed, callback_url, body }
}

/// Makes the planned delivery (if any) and records the outcome in the activity list;
/// returns its number. `done` opens the summary: what happened on "Facebook" whether
/// or not a webhook went out.
pub(super) async fn carry_out(shared: &Shared, page: &str, plan: Plan, done: &str) -> u64 {
    let (changed, delivery, summary) = match plan {
        Plan::Nothing(changed, why) => (changed, None, why),
        Plan::Deliver { changed, callback_url, body } => {
            let answer = deliver(shared, &callback_url, &body).await;
            let summary = match &answer {
                Ok((status, text)) => {
                    format!("{done} Delivered to pagesync: {status} {}", text.chars().take(200).collect::<String>())
                }
                Err(e) => format!("{done} But the delivery to {callback_url} failed: {e}"),
            };
            (changed, Some(DeliveryOutcome { callback_url, body, answer }), summary)
        }
    };
    tracing::info!(page, changed = ?changed, summary = %summary, "emulator: Page activity");
    let mut world = shared.lock();
    let number = world.next_activity;
    world.next_activity += 1;
    world.activity.push_back(Activity { number, page: page.to_owned(), changed, delivery, summary });
    while world.activity.len() > ACTIVITY_KEPT {
        world.activity.pop_front();
    }
    number
}

/// POSTs a delivery signed as Meta signs it: both headers, HMAC under the app secret
/// over exactly the bytes sent.
async fn deliver(shared: &Shared, url: &str, body: &str) -> Result<(u16, String), String> {
    let secret = shared.lock().config.app_secret.clone();
    let sent = shared
        .client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", sign_sha256(secret.expose(), body.as_bytes()))
        .header("X-Hub-Signature", sign_sha1(secret.expose(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(response) => Ok((response.status().as_u16(), response.text().await.unwrap_or_default())),
        Err(e) => Err(e.without_url().to_string()),
    }
}

/// Meta's verification request to `callback_url`: the answer (status, body) and
/// whether it was 200 with exactly the challenge; or the transport error.
pub(super) async fn verification_request(
    client: &reqwest::Client,
    callback_url: &str,
    verify_token: &str,
) -> Result<((u16, String), bool), String> {
    let challenge = rand::random_range(1_000_000_000u64..10_000_000_000u64).to_string();
    let query = [("hub.mode", "subscribe"), ("hub.verify_token", verify_token), ("hub.challenge", &challenge)];
    let response = client.get(callback_url).query(&query).send().await.map_err(|e| e.without_url().to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let ok = status == 200 && body == challenge;
    Ok(((status, body), ok))
}

/// JSON text as Meta puts it on the wire: non-ASCII as lowercase `\uXXXX` escapes
/// (UTF-16, surrogate pairs above the BMP) and `/` as `\/`. Both only ever occur
/// inside strings in serde_json's output, so the rewrite keeps the JSON equal.
fn meta_wire(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{AppSubscription, EmulatorConfig};

    #[test]
    fn meta_wire_escapes_non_ascii_and_slashes_but_keeps_the_json() {
        let wire = meta_wire(&json_string("Café Lumière / Bakery 🚲"));
        assert_eq!(wire, r#""Caf\u00e9 Lumi\u00e8re \/ Bakery \ud83d\udeb2""#);
        assert_eq!(serde_json::from_str::<String>(&wire).unwrap(), "Café Lumière / Bakery 🚲");
        assert_eq!(serde_json::from_str::<String>(&meta_wire(&json_string(r"a\/b"))).unwrap(), r"a\/b");
    }

    fn world() -> World {
        let config =
            EmulatorConfig { webhook_address: "http://127.0.0.1:2/facebook/webhook".into(), ..Default::default() };
        World::new(config)
    }

    fn subscribe(world: &mut World, fields: &[&str]) {
        world.app_subscription = Some(AppSubscription {
            callback_url: "http://127.0.0.1:3/facebook/webhook".into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            include_values: true,
            active: true,
        });
    }

    #[test]
    fn the_delivery_is_meta_shaped_and_filtered_by_both_subscription_levels() {
        let mut world = world();
        let change = vec![("name".to_owned(), "Café".to_owned()), ("category".to_owned(), "Bakery".to_owned())];
        assert!(matches!(plan_delivery(&world, "100000000000001", change.clone()), Plan::Nothing(..)));
        world.installed.insert("100000000000001".into(), vec!["name".into(), "category".into()]);
        subscribe(&mut world, &["name"]);
        let Plan::Deliver { callback_url, body, .. } = plan_delivery(&world, "100000000000001", change) else {
            panic!("expected a delivery");
        };
        assert_eq!(callback_url, "http://127.0.0.1:3/facebook/webhook");
        assert!(body.starts_with(r#"{"object":"page","entry":[{"id":"100000000000001","time":"#), "{body}");
        assert!(body.ends_with(r#","changes":[{"field":"name","value":"Caf\u00e9"}]}]}"#), "{body}");
    }

    #[test]
    fn a_customer_message_is_delivered_only_when_messages_is_subscribed_at_both_levels() {
        let mut world = world();
        let page = "100000000000001";
        let text = "Café </script> \"hi\"";
        let nothing = |world: &World| match plan_message(world, page, text) {
            Plan::Nothing(changed, why) => {
                assert_eq!(changed, vec!["messages"]);
                why
            }
            Plan::Deliver { body, .. } => panic!("delivered {body}"),
        };
        assert!(nothing(&world).contains("not installed"));
        world.installed.insert(page.into(), vec!["name".into(), "category".into()]);
        assert!(nothing(&world).contains("not installed"));
        world.installed.insert(page.into(), vec!["name".into(), "messages".into()]);
        subscribe(&mut world, &["name"]);
        assert!(nothing(&world).contains("subscription does not include messages"));
        subscribe(&mut world, &["name", "messages"]);
        let Plan::Deliver { callback_url, body, .. } = plan_message(&world, page, text) else {
            panic!("expected a delivery");
        };
        assert_eq!(callback_url, "http://127.0.0.1:3/facebook/webhook");
        assert!(body.starts_with(&format!(r#"{{"object":"page","entry":[{{"id":"{page}","time":"#)), "{body}");
        assert!(body.contains(&format!(r#","messaging":[{{"sender":{{"id":"{DEMO_CUSTOMER_PSID}"}},"#)), "{body}");
        assert!(body.ends_with(r#","text":"Caf\u00e9 <\/script> \"hi\""}}]}]}"#), "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let event = &json["entry"][0]["messaging"][0];
        assert_eq!(event["recipient"]["id"], page);
        assert_eq!(event["message"]["text"], text);
        assert!(event["message"]["mid"].as_str().unwrap().starts_with("m_"));
        assert_eq!(event["timestamp"], json["entry"][0]["time"]);
        assert!(event["timestamp"].as_u64().unwrap() > 1_000_000_000_000, "milliseconds");
    }
}
