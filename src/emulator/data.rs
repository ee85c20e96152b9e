//! The world the emulator serves: Facebook users, their Pages and tokens, single-use
//! codes, and the sandbox's demo data.

use serde_json::{Map, Value, json};

use super::World;
use crate::clock::unix_now;

/// The demo shop the sandbox's start URL installs on (any `*.myshopify.com` works).
pub const DEMO_SHOP: &str = "demo-shop.myshopify.com";

/// The demo Pages: id, name, category. Every one belongs to the demo Facebook user.
pub const DEMO_PAGES: [(&str, &str, &str); 3] = [
    ("100000000000001", "Maple & Oak Candle Co.", "Home Decor"),
    ("100000000000002", "Harbor Coffee Roasters", "Coffee Shop"),
    ("100000000000003", "Juniper Bike Works", "Bicycle Shop"),
];

/// The demo customer who writes to the Pages (a page-scoped id, PSID, as Messenger
/// deliveries carry in `sender.id`). Fixed, so that a bot's conversation view groups
/// every demo message under one customer.
pub const DEMO_CUSTOMER_PSID: &str = "7100000000000042";

/// The demo Facebook user who owns the demo Pages (an app-scoped id).
pub const DEMO_USER_ID: &str = "1000000000000042";
pub(super) const DEMO_USER_NAME: &str = "Sandbox Merchant";

/// Dialog and Shopify codes live this long (Meta documents ten minutes).
const CODE_LIFETIME_SECS: u64 = 600;

/// A Page as `/me/accounts` lists it for one user.
#[derive(Debug, Clone)]
pub struct FbPage {
    pub id: String,
    pub name: String,
    pub category: String,
    /// This user's Page token.
    pub token: String,
}

/// A Facebook user the emulator knows.
#[derive(Debug, Clone)]
pub struct FbUser {
    pub id: String,
    pub name: String,
    /// The long-lived user token `fb_exchange_token` answers.
    pub long_token: String,
    pub pages: Vec<FbPage>,
}

/// Who a token belongs to.
#[derive(Debug, Clone)]
pub(super) enum TokenOwner {
    /// A user (a short- or a long-lived token).
    User(String),
    Page(String),
}

/// A single-use code: whose it is (a user id or a shop), and, for the Login dialog,
/// the redirect URI it was issued for.
pub(super) struct Code {
    pub(super) owner: String,
    pub(super) redirect_uri: String,
    pub(super) expires_at: u64,
}

impl Code {
    pub(super) fn live(&self) -> bool {
        self.expires_at >= unix_now()
    }
}

/// A long random string: `prefix` and the hex of 32 random bytes.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// A Page with the few fields tests need.
pub(super) fn plain_page(id: &str, name: &str) -> Map<String, Value> {
    as_map(json!({ "id": id, "name": name, "category": "Home Decor", "fan_count": 12 }))
}

fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl World {
    /// Adds (or updates the given fields of) a Page, readable with `token`.
    pub(super) fn add_page(&mut self, fields: Map<String, Value>, token: &str) {
        let id = fields.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.pages.entry(id.clone()).or_default().extend(fields);
        self.tokens.insert(token.to_owned(), TokenOwner::Page(id));
    }

    /// A user with these Pages, each with a fresh Page token.
    pub(super) fn add_user(&mut self, id: &str, name: &str, pages: Vec<Map<String, Value>>) -> FbUser {
        let user = FbUser {
            id: id.to_owned(),
            name: name.to_owned(),
            long_token: random_token("EAAGlong"),
            pages: pages
                .iter()
                .map(|fields| {
                    let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                    FbPage {
                        id: text("id"),
                        name: text("name"),
                        category: text("category"),
                        token: random_token("EAAGpage"),
                    }
                })
                .collect(),
        };
        for (fields, page) in pages.into_iter().zip(&user.pages) {
            self.add_page(fields, &page.token);
            self.issued.push(page.token.clone());
        }
        self.tokens.insert(user.long_token.clone(), TokenOwner::User(user.id.clone()));
        self.issued.push(user.long_token.clone());
        self.users.insert(user.id.clone(), user.clone());
        user
    }

    /// A fresh Login dialog code for `user`, bound to `redirect_uri`.
    pub(super) fn dialog_code(&mut self, user: &str, redirect_uri: &str) -> String {
        let code = random_token("AQ");
        let expires_at = unix_now() + CODE_LIFETIME_SECS;
        let record = Code { owner: user.to_owned(), redirect_uri: redirect_uri.to_owned(), expires_at };
        self.dialog_codes.insert(code.clone(), record);
        self.issued.push(code.clone());
        code
    }

    /// A fresh Shopify authorization code for `shop`.
    pub(super) fn shop_code(&mut self, shop: &str) -> String {
        let code = hex::encode(rand::random::<[u8; 16]>());
        let expires_at = unix_now() + CODE_LIFETIME_SECS;
        self.shop_codes.insert(code.clone(), Code { owner: shop.to_owned(), redirect_uri: String::new(), expires_at });
        self.issued.push(code.clone());
        code
    }

    /// Issues a token owned by `owner` and remembers it.
    pub(super) fn issue(&mut self, prefix: &str, owner: TokenOwner) -> String {
        let token = random_token(prefix);
        self.tokens.insert(token.clone(), owner);
        self.issued.push(token.clone());
        token
    }
}

/// The demo Pages with every field the sandbox shows; pictures are served by the
/// emulator at `base`. A data table: kept as written.
#[rustfmt::skip]
pub(super) fn demo_pages(base: &str) -> Vec<Map<String, Value>> {
    let extra = [
        ("mapleandoakcandles", "Hand-poured soy candles from Vermont.",
         "Small-batch candles, wax melts and gift sets, poured in our Burlington workshop.",
         "https://maple-and-oak.example", "+1 802-555-0141", "hello@maple-and-oak.example",
         json!({"street": "12 Church St", "city": "Burlington", "state": "VT", "zip": "05401",
                "country": "United States", "latitude": 44.4779, "longitude": -73.2121}), 1284, "2252"),
        ("harborcoffeeroasters", "Single-origin coffee, roasted by the water.",
         "A roastery and espresso bar on the Portland waterfront. Beans shipped weekly.",
         "https://harbor-coffee.example", "+1 207-555-0188", "orders@harbor-coffee.example",
         json!({"street": "48 Commercial St", "city": "Portland", "state": "ME", "zip": "04101",
                "country": "United States", "latitude": 43.6567, "longitude": -70.2515}), 5623, "128673187201735"),
        ("juniperbikeworks", "Repairs, rentals and custom builds.",
         "Full-service bike shop: tune-ups, wheel builds and weekend rentals.",
         "https://juniper-bikes.example", "+1 303-555-0112", "shop@juniper-bikes.example",
         json!({"street": "2150 Pearl St", "city": "Boulder", "state": "CO", "zip": "80302",
                "country": "United States", "latitude": 40.0196, "longitude": -105.2745}), 932, "197871390225897"),
    ];
    DEMO_PAGES
        .iter()
        .zip(extra)
        .map(|((id, name, category), (username, about, description, website, phone, email, location, fans, cat_id))| {
            as_map(json!({
                "id": id, "name": name, "category": category,
                "category_list": [{"id": cat_id, "name": category}],
                "about": about, "description": description, "website": website,
                "link": format!("https://www.facebook.com/{username}"), "username": username,
                "phone": phone, "emails": [email], "location": location, "fan_count": fans,
                "verification_status": "not_verified",
                "picture": {"data": {"height": 50, "width": 50, "is_silhouette": false,
                                     "url": format!("{base}/emulator/pictures/{id}.svg")}},
            }))
        })
        .collect()
}
