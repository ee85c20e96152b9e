//! The Graph API under `/{version}`, and the dispatcher every API call goes through
//! (Graph and Shopify's token endpoint): it logs the call, answers an injected fault
//! if there is one, and routes it otherwise.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use pagesync_actors::Secret;
use serde_json::{Map, Value, json};

use super::data::TokenOwner;
use super::faults::{Call, Endpoint};
use super::{AppSubscription, AppSubscriptionAttempt, Shared, World};
use crate::clock::unix_now;
use crate::verify::{appsecret_proof, constant_time_eq};

/// How far `appsecret_time` may be from our clock.
const PROOF_WINDOW_SECS: u64 = 300;

/// How a list of webhook fields is rendered: Meta has answered both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldForm {
    /// `["messages", "name"]`.
    #[default]
    Strings,
    /// `[{"name": "messages", "version": "v25.0"}]`.
    Objects,
}

impl FieldForm {
    fn render(self, fields: &[String], version: &str) -> Value {
        match self {
            FieldForm::Strings => json!(fields),
            FieldForm::Objects => fields.iter().map(|f| json!({"name": f, "version": version})).collect(),
        }
    }
}

/// An API request's parameters.
pub(super) struct Request {
    query: HashMap<String, String>,
    form: HashMap<String, String>,
    /// The query's over the body's.
    params: HashMap<String, String>,
    /// `access_token` or the `Authorization` header's.
    token: Option<String>,
}

impl Request {
    fn read(req: &HttpRequest, body: &[u8]) -> Request {
        let query = pairs(req.query_string().as_bytes());
        let form = body_params(req, body);
        let mut params = form.clone();
        params.extend(query.clone());
        let token = params.get("access_token").cloned().or_else(|| {
            let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
            value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("OAuth ")).map(str::to_owned)
        });
        Request { query, form, params, token }
    }

    /// A parameter, or "" when absent.
    pub(super) fn get(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

/// Every request no HTML route took: logged, then a fault or the normal answer.
pub(super) async fn serve(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let request = Request::read(&req, &body);
    let (method, path) = (req.method().as_str().to_owned(), req.path().to_owned());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let endpoint = endpoint_of(&method, &segments, &request);
    let (fault, delay, seq) = {
        let mut world = shared.lock();
        let secret = &world.config.app_secret;
        let proof_ok = request.token.as_deref().is_some_and(|t| proof_problem(&request.params, t, secret).is_none());
        let (fault, delay) = world.faults.take(endpoint.as_ref());
        let call = Call {
            method: method.clone(),
            path: path.clone(),
            query: request.query.clone(),
            form: request.form.clone(),
            token: request.token.clone(),
            proof_ok,
            endpoint,
            status: 0,
            seq: 0,
        };
        (fault, delay, world.log.arrived(call))
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let answer = match fault {
        Some(fault) => fault.answer().await,
        None => route(&shared, &req, &method, &segments, &request).await,
    };
    shared.lock().log.answered(seq, answer.status().as_u16());
    answer
}

fn endpoint_of(method: &str, segments: &[&str], request: &Request) -> Option<Endpoint> {
    let owned = |s: &&str| (*s).to_owned();
    Some(match (method, segments) {
        ("POST", ["shopify", shop, "admin", "oauth", "access_token"]) => Endpoint::ShopifyToken(owned(shop)),
        ("GET", [_, "oauth", "access_token"]) if request.get("grant_type") == "fb_exchange_token" => {
            Endpoint::LongLivedExchange
        }
        ("GET", [_, "oauth", "access_token"]) => Endpoint::CodeExchange,
        ("GET", [_, "debug_token"]) => Endpoint::DebugToken,
        ("GET", [_, "me"]) => Endpoint::Me,
        ("GET", [_, "me", "accounts"]) => Endpoint::MeAccounts,
        ("GET", [_, page, "subscribed_apps"]) => Endpoint::SubscribedAppsGet(owned(page)),
        ("POST", [_, page, "subscribed_apps"]) => Endpoint::SubscribedAppsPost(owned(page)),
        ("GET", [_, _, "subscriptions"]) => Endpoint::AppSubscriptionsGet,
        ("POST", [_, _, "subscriptions"]) => Endpoint::AppSubscriptions,
        ("GET", [_, page]) => Endpoint::PageGet(owned(page)),
        _ => return None,
    })
}

async fn route(shared: &Shared, req: &HttpRequest, method: &str, segments: &[&str], r: &Request) -> HttpResponse {
    if let ("POST", ["shopify", shop, "admin", "oauth", "access_token"]) = (method, segments) {
        return super::shopify::token(&mut shared.lock(), shop, r);
    }
    let version = shared.lock().config.graph_version.clone();
    let Some((asked, rest)) = segments.split_first() else {
        return graph_error(2500, None, "Unknown path components: /");
    };
    if *asked != version {
        return graph_error(
            2635,
            None,
            &format!("(#2635) The emulator answers Graph API {version} only, not {asked}."),
        );
    }
    if let ("POST", [app, "subscriptions"]) = (method, rest) {
        return app_subscriptions_post(shared, app, r).await;
    }
    let mut world = shared.lock();
    match (method, rest) {
        ("GET", ["oauth", "access_token"]) => oauth_access_token(&mut world, r),
        ("GET", ["debug_token"]) => debug_token(&world, r),
        ("GET", ["me"]) => me(&world, r),
        ("GET", ["me", "accounts"]) => accounts(&world, &format!("{}{}", shared.url, req.path()), r),
        (_, [page, "subscribed_apps"]) => subscribed_apps(&mut world, method, page, r),
        ("GET", [app, "subscriptions"]) => app_subscriptions(&world, app, r),
        ("GET", [page]) => page_get(&world, page, r),
        _ => graph_error(2500, None, &format!("Unknown path components: /{}", rest.join("/"))),
    }
}

// ----- errors and checks -------------------------------------------------------------

/// Graph's error body, HTTP 400.
pub(super) fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> HttpResponse {
    // Graph calls most failures OAuthException; "object does not exist" is a
    // GraphMethodException.
    let kind = if subcode == Some(33) { "GraphMethodException" } else { "OAuthException" };
    let trace = format!("Emu{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut error = json!({ "message": message, "type": kind, "code": code, "fbtrace_id": trace });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    HttpResponse::BadRequest().json(json!({ "error": error }))
}

fn invalid_token() -> HttpResponse {
    graph_error(190, None, "Invalid OAuth access token - Cannot parse access token")
}

fn unknown_object(id: &str) -> HttpResponse {
    let message = format!(
        "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
         permissions, or does not support this operation."
    );
    graph_error(100, Some(33), &message)
}

/// Why `appsecret_proof` is not acceptable for `token`, if it is not: it must be the
/// HMAC of `token|appsecret_time` under the app secret, at most five minutes off (the
/// timed form, the only one pagesync sends).
fn proof_problem(params: &HashMap<String, String>, token: &str, secret: &Secret) -> Option<&'static str> {
    let (Some(proof), Some(time)) = (params.get("appsecret_proof"), params.get("appsecret_time")) else {
        return Some("API calls from the server require an appsecret_proof argument");
    };
    match time.parse::<u64>() {
        Ok(time) if time.abs_diff(unix_now()) <= PROOF_WINDOW_SECS => {
            let ok = constant_time_eq(proof, &appsecret_proof(secret, &Secret::new(token), time));
            (!ok).then_some("Invalid appsecret_proof provided in the API argument")
        }
        _ => Some("Invalid appsecret_time provided in the API argument"),
    }
}

/// A Graph error answer, boxed: it travels in `Err` through the checks.
type Refusal = Box<HttpResponse>;

/// A call made with a user or Page token: a known token and a valid proof.
fn token_owner(world: &World, r: &Request) -> Result<TokenOwner, Refusal> {
    let Some(token) = r.token.as_deref() else {
        return Err(Box::new(graph_error(104, None, "An access token is required to request this resource.")));
    };
    let owner = world.tokens.get(token).cloned().ok_or_else(|| Box::new(invalid_token()))?;
    match proof_problem(&r.params, token, &world.config.app_secret) {
        Some(problem) => Err(Box::new(graph_error(100, None, problem))),
        None => Ok(owner),
    }
}

/// A call on `page` with a Page token of that Page.
fn page_token_check(world: &World, page: &str, r: &Request) -> Result<(), Refusal> {
    if !world.pages.contains_key(page) {
        return Err(Box::new(unknown_object(page)));
    }
    match token_owner(world, r)? {
        TokenOwner::Page(p) if p == page => Ok(()),
        TokenOwner::Page(_) => {
            Err(Box::new(graph_error(190, None, "Invalid OAuth access token: the token is for another Page")))
        }
        TokenOwner::User(_) => {
            Err(Box::new(graph_error(210, None, "(#210) A page access token is required to request this resource.")))
        }
    }
}

fn app_token_ok(world: &World, r: &Request) -> bool {
    let expected = format!("{}|{}", world.config.app_id, world.config.app_secret.expose());
    r.token.as_deref().is_some_and(|t| constant_time_eq(t, &expected))
}

// ----- OAuth and tokens --------------------------------------------------------------

/// `GET /oauth/access_token`: a dialog code for a short-lived user token, or
/// (`grant_type=fb_exchange_token`) a user token for the long-lived one.
fn oauth_access_token(world: &mut World, r: &Request) -> HttpResponse {
    if r.get("client_id") != world.config.app_id {
        return graph_error(101, None, "Error validating application. Invalid application ID.");
    }
    if !constant_time_eq(r.get("client_secret"), world.config.app_secret.expose()) {
        return graph_error(1, None, "Error validating client secret.");
    }
    if r.get("grant_type") == "fb_exchange_token" {
        let long = match world.tokens.get(r.get("fb_exchange_token")) {
            Some(TokenOwner::User(id)) => world.users.get(id).map(|u| u.long_token.clone()),
            _ => None,
        };
        return match long {
            Some(long) => {
                HttpResponse::Ok().json(json!({"access_token": long, "token_type": "bearer", "expires_in": 5_183_944}))
            }
            None => invalid_token(),
        };
    }
    if r.get("code").is_empty() {
        return graph_error(100, None, "Missing authorization code");
    }
    let Some(code) = world.dialog_codes.remove(r.get("code")) else {
        return graph_error(100, Some(36009), "This authorization code has been used.");
    };
    if !code.live() {
        return graph_error(100, Some(36007), "This authorization code has expired.");
    }
    if r.get("redirect_uri") != code.redirect_uri {
        let message = "Error validating verification code. Please make sure your redirect_uri is identical to the \
                       one you used in the OAuth dialog request";
        return graph_error(100, Some(36008), message);
    }
    let short = world.issue("EAAGshort", TokenOwner::User(code.owner));
    HttpResponse::Ok().json(json!({"access_token": short, "token_type": "bearer", "expires_in": 5_400}))
}

/// `GET /debug_token?input_token=` with the app token.
fn debug_token(world: &World, r: &Request) -> HttpResponse {
    if !app_token_ok(world, r) {
        return invalid_token();
    }
    let Some(input) = r.params.get("input_token") else {
        return graph_error(100, None, "(#100) The parameter input_token is required");
    };
    let mut data = json!({"app_id": world.config.app_id, "expires_at": 0, "is_valid": false});
    match world.tokens.get(input) {
        Some(TokenOwner::Page(page)) => {
            data["type"] = json!("PAGE");
            data["profile_id"] = json!(page);
            data["is_valid"] = json!(!world.revoked.contains(input));
        }
        Some(TokenOwner::User(id)) => {
            (data["type"], data["user_id"], data["is_valid"]) = (json!("USER"), json!(id), json!(true))
        }
        None => data["error"] = json!({"code": 190, "message": "Invalid OAuth access token."}),
    }
    HttpResponse::Ok().json(json!({ "data": data }))
}

// ----- users and Pages ---------------------------------------------------------------

/// `GET /me` with a user token: who it is.
fn me(world: &World, r: &Request) -> HttpResponse {
    match token_owner(world, r) {
        Ok(TokenOwner::User(id)) => {
            let name = world.users.get(&id).map_or("", |u| u.name.as_str());
            HttpResponse::Ok().json(json!({"id": id, "name": name}))
        }
        Ok(TokenOwner::Page(_)) => graph_error(100, None, "(#100) The emulator answers /me for user tokens only"),
        Err(answer) => *answer,
    }
}

/// `GET /me/accounts`: the user's Pages with their Page tokens, `page_size` per
/// answer, with Graph's cursor paging and a ready-to-follow `next` link to `here`.
fn accounts(world: &World, here: &str, r: &Request) -> HttpResponse {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let user = match token_owner(world, r) {
        Ok(TokenOwner::User(id)) => world.users.get(&id),
        Ok(TokenOwner::Page(_)) => {
            return graph_error(100, None, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)");
        }
        Err(answer) => return *answer,
    };
    let pages = user.map_or(&[][..], |u| u.pages.as_slice());
    let start = match r.params.get("after") {
        None => Some(0),
        Some(cursor) => b64
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.strip_prefix("index:").and_then(|n| n.parse::<usize>().ok())),
    };
    let Some(start) = start else { return graph_error(100, None, "(#100) Invalid cursor") };
    let limit = r.get("limit").parse::<usize>().unwrap_or(25).clamp(1, 100);
    let end = start.saturating_add(limit.min(world.page_size)).min(pages.len());
    let default = ["access_token", "category", "category_list", "name", "id", "tasks"];
    let data: Vec<Value> = pages[start.min(end)..end]
        .iter()
        .map(|page| {
            let mut entry = world.pages.get(&page.id).cloned().unwrap_or_default();
            entry.insert("access_token".into(), json!(page.token));
            entry.insert("tasks".into(), json!(["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]));
            Value::Object(select_fields(&entry, &r.params, &default))
        })
        .collect();
    let cursor = |n: usize| b64.encode(format!("index:{n}"));
    let mut paging = json!({"cursors": {"before": cursor(start), "after": cursor(end)}});
    if end < pages.len() {
        // Like Graph: the request's own parameters (token and proof included) plus
        // the cursor.
        let mut next = form_urlencoded::Serializer::new(String::new());
        next.extend_pairs(r.query.iter().filter(|(k, _)| *k != "after" && *k != "before"));
        next.append_pair("after", &cursor(end));
        paging["next"] = json!(format!("{here}?{}", next.finish()));
    }
    HttpResponse::Ok().json(json!({ "data": data, "paging": paging }))
}

/// `GET /{page-id}?fields=...` with the Page token: the requested fields the Page has.
fn page_get(world: &World, page: &str, r: &Request) -> HttpResponse {
    if let Err(answer) = page_token_check(world, page, r) {
        return *answer;
    }
    let fields = world.pages.get(page).cloned().unwrap_or_default();
    let mut ok = HttpResponse::Ok();
    if let Some(usage) = &world.usage_header {
        ok.insert_header(("X-App-Usage", usage.clone()));
    }
    ok.json(select_fields(&fields, &r.params, &["name", "id"]))
}

// ----- webhook subscriptions ---------------------------------------------------------

/// `GET` and `POST /{page-id}/subscribed_apps` with the Page token. A POST
/// replaces the fields our app has on the Page.
fn subscribed_apps(world: &mut World, method: &str, page: &str, r: &Request) -> HttpResponse {
    if let Err(answer) = page_token_check(world, page, r) {
        return *answer;
    }
    match method {
        "GET" => {
            let data = match world.installed.get(page) {
                Some(fields) => json!([{
                    "category": "Business", "link": "https://pagesync.example/", "name": "pagesync",
                    "id": world.config.app_id,
                    "subscribed_fields": world.page_field_form.render(fields, &world.config.graph_version),
                }]),
                None => json!([]),
            };
            HttpResponse::Ok().json(json!({ "data": data }))
        }
        "POST" => {
            let fields = field_list(r.get("subscribed_fields"));
            if fields.is_empty() {
                return graph_error(100, None, "(#100) The parameter subscribed_fields is required");
            }
            if let Some(bad) = fields.iter().find(|f| !is_field_name(f)) {
                return graph_error(
                    100,
                    None,
                    &format!("(#100) Param subscribed_fields contains an invalid field: {bad}"),
                );
            }
            tracing::info!(page, fields = %fields.join(","), "emulator: app installed on a Page");
            world.installed.insert(page.to_owned(), fields);
            HttpResponse::Ok().json(json!({ "success": true }))
        }
        _ => graph_error(2500, None, "Unsupported method"),
    }
}

/// `GET /{app-id}/subscriptions` with the app token.
fn app_subscriptions(world: &World, app: &str, r: &Request) -> HttpResponse {
    if app != world.config.app_id || !app_token_ok(world, r) {
        return invalid_token();
    }
    let data: Vec<Value> = world
        .app_subscription
        .iter()
        .map(|s| {
            let fields = world.app_field_form.render(&s.fields, &world.config.graph_version);
            json!({"object": "page", "callback_url": s.callback_url, "active": s.active, "fields": fields})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "data": data }))
}

/// `POST /{app-id}/subscriptions` with the app token. Before answering, makes Meta's
/// verification request to `callback_url` and succeeds only if the challenge comes
/// back verbatim with 200. Then, as Meta does, the callback is replaced and the
/// fields are added to those already there (docs/platform.md, "Webhook subscriptions").
async fn app_subscriptions_post(shared: &Shared, app: &str, r: &Request) -> HttpResponse {
    {
        let world = shared.lock();
        if app != world.config.app_id || !app_token_ok(&world, r) {
            return invalid_token();
        }
    }
    if r.get("object") != "page" {
        return graph_error(100, None, "(#100) The emulator supports object=page only");
    }
    let callback_url = r.get("callback_url").to_owned();
    if !reqwest::Url::parse(&callback_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return graph_error(100, None, "(#100) callback_url must be a valid http(s) URL");
    }
    if r.get("verify_token").is_empty() {
        return graph_error(100, None, "(#100) verify_token is required");
    }
    let fields = field_list(r.get("fields"));
    if fields.is_empty() || !fields.iter().all(|f| is_field_name(f)) {
        return graph_error(100, None, "(#100) fields must list one or more Page fields");
    }
    let answer = super::sender::verification_request(&shared.client, &callback_url, r.get("verify_token")).await;
    let verified = answer.as_ref().is_ok_and(|(_, ok)| *ok);
    let answer = answer.map(|(reply, _)| reply);
    tracing::info!(verified, callback_url = %callback_url, "emulator: app subscription verification");
    let mut world = shared.lock();
    world.attempts.push(AppSubscriptionAttempt {
        callback_url: callback_url.clone(),
        params: r.params.clone(),
        verified,
        answer,
    });
    if !verified {
        let message = "(#2200) callback verification failed: the URL couldn't be validated. Response does not \
                       match challenge, expected value and received value differ.";
        return graph_error(2200, None, message);
    }
    let mut all = world.app_subscription.take().map(|s| s.fields).unwrap_or_default();
    for field in fields {
        if !all.contains(&field) {
            all.push(field);
        }
    }
    let include_values = matches!(r.get("include_values"), "true" | "1");
    world.app_subscription = Some(AppSubscription { callback_url, fields: all, include_values, active: true });
    HttpResponse::Ok().json(json!({ "success": true }))
}

// ----- parameters --------------------------------------------------------------------

/// Query or form pairs by name (the last one wins).
pub(super) fn pairs(text: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(text).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A request's body parameters: a JSON object (arrays joined with commas) or a form.
fn body_params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return pairs(body);
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else { return HashMap::new() };
    let text = |v: Value| match v {
        Value::String(s) => s,
        Value::Array(items) => {
            let items: Vec<String> =
                items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect();
            items.join(",")
        }
        other => other.to_string(),
    };
    map.into_iter().map(|(k, v)| (k, text(v))).collect()
}

/// A list parameter as Graph takes it: `a,b` or a JSON array `["a","b"]`.
pub fn field_list(raw: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) {
        return items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    }
    raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

fn is_field_name(f: &str) -> bool {
    !f.is_empty() && f.len() <= 64 && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The requested top-level fields (`id` always), or `default` without `fields`.
fn select_fields(all: &Map<String, Value>, params: &HashMap<String, String>, default: &[&str]) -> Map<String, Value> {
    let wanted: Vec<String> = match params.get("fields") {
        Some(f) => top_level_fields(f),
        None => default.iter().map(|s| (*s).to_owned()).collect(),
    };
    std::iter::once("id".to_owned())
        .chain(wanted)
        .filter_map(|field| all.get(&field).map(|value| (field, value.clone())))
        .collect()
}

/// The top-level names of a Graph `fields` parameter: `a,b{c,d},e.limit(1)` gives
/// `a`, `b`, `e`.
fn top_level_fields(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut current, mut in_name) = (0usize, String::new(), true);
    for c in raw.chars().chain(std::iter::once(',')) {
        match c {
            '{' | '(' => (depth, in_name) = (depth + 1, false),
            '}' | ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                (current, in_name) = (String::new(), true);
            }
            '.' if depth == 0 => in_name = false,
            c if depth == 0 && in_name => current.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_fields_skip_nested_selections_and_modifiers() {
        assert_eq!(
            top_level_fields("id,name,picture{url,height},feed.limit(2),location"),
            vec!["id", "name", "picture", "feed", "location"]
        );
        assert_eq!(top_level_fields(""), Vec::<String>::new());
        assert_eq!(top_level_fields(" id , name "), vec!["id", "name"]);
    }

    #[test]
    fn field_lists_come_as_commas_or_json() {
        assert_eq!(field_list("a, b,,c"), vec!["a", "b", "c"]);
        assert_eq!(field_list(r#"["a","b"]"#), vec!["a", "b"]);
    }
}
