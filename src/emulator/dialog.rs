//! The Facebook Login dialog: `GET /{version}/dialog/oauth` shows who is logged in,
//! their Pages and the permissions asked for (`#allow` / `#cancel`); the `POST` to the
//! same path redirects with a code or with Meta's `access_denied` error.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::editor::{hidden, html, html_error, see_other, with_query};
use super::graph::pairs;
use super::{EmulatorConfig, Shared};
use crate::html::escape;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/{version}/dialog/oauth", web::get().to(dialog))
        .route("/{version}/dialog/oauth", web::post().to(decide));
}

fn check(config: &EmulatorConfig, version: &str, params: &HashMap<String, String>) -> Result<(), String> {
    if version != config.graph_version {
        return Err(format!("This emulator answers Graph {} only, not {version}.", config.graph_version));
    }
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    if get("client_id") != config.app_id {
        return Err("Invalid App ID: The provided app ID does not look like a valid app ID.".into());
    }
    if get("redirect_uri") != config.facebook_redirect_uri {
        return Err("URL blocked: This redirect failed because the redirect URI is not whitelisted in the app's \
                    Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app \
                    domains as Valid OAuth Redirect URIs."
            .into());
    }
    match params.get("response_type").map(String::as_str) {
        None | Some("code") => Ok(()),
        Some(other) => Err(format!("The emulator supports response_type=code only, not {other}.")),
    }
}

/// `GET /{version}/dialog/oauth`.
async fn dialog(req: HttpRequest, path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let version = path.into_inner();
    let params = pairs(req.query_string().as_bytes());
    let world = shared.lock();
    if let Err(message) = check(&world.config, &version, &params) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let Some(user) = world.dialog_user.as_ref().and_then(|id| world.users.get(id)) else {
        return html_error(StatusCode::BAD_REQUEST, "Nobody is logged in to Facebook in this emulator.");
    };
    let pages: Vec<String> = user
        .pages
        .iter()
        .map(|p| {
            let fields = world.pages.get(&p.id);
            let text = |k: &str| escape(fields.and_then(|f| f.get(k)).and_then(Value::as_str).unwrap_or_default());
            format!(
                "<li data-page-id=\"{}\"><strong>{}</strong> · {}</li>",
                escape(&p.id),
                text("name"),
                text("category")
            )
        })
        .collect();
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    let scopes: Vec<String> = get("scope")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| format!("<li><code>{}</code></li>", escape(s)))
        .collect();
    let body = format!(
        "<h1>pagesync wants to manage your Pages</h1><div class=\"card\"><p>Logged in as <strong>{}</strong>. \
         pagesync will be able to use these Pages:</p><ul id=\"dialog-pages\">{}</ul><p>Permissions \
         requested:</p><ul>{}</ul><form id=\"dialog\" method=\"post\" action=\"/{}/dialog/oauth\">{}\
         <button class=\"primary\" type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Continue</button>\
         <button type=\"submit\" id=\"cancel\" name=\"decision\" value=\"cancel\">Cancel</button></form></div>",
        escape(&user.name),
        pages.join(""),
        scopes.join(""),
        escape(&version),
        ["client_id", "redirect_uri", "scope", "response_type", "state"].map(|k| hidden(k, get(k))).join(""),
    );
    html(StatusCode::OK, "Log in with Facebook", &body)
}

/// `POST /{version}/dialog/oauth`: Continue redirects with a code, Cancel with Meta's
/// `access_denied` error.
async fn decide(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let version = path.into_inner();
    let form = pairs(&body);
    let mut world = shared.lock();
    if let Err(message) = check(&world.config, &version, &form) {
        return html_error(StatusCode::BAD_REQUEST, &message);
    }
    let redirect_uri = world.config.facebook_redirect_uri.clone();
    let state = form.get("state").map_or("", String::as_str);
    let location = match form.get("decision").map(String::as_str) {
        Some("allow") => {
            let Some(user) = world.dialog_user.clone() else {
                return html_error(StatusCode::BAD_REQUEST, "Nobody is logged in to Facebook in this emulator.");
            };
            let code = world.dialog_code(&user, &redirect_uri);
            with_query(&redirect_uri, &[("code", &code), ("state", state)])
        }
        Some("cancel") => with_query(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_code", "200"),
                ("error_description", "Permissions error"),
                ("error_reason", "user_denied"),
                ("state", state),
            ],
        ),
        _ => return html_error(StatusCode::BAD_REQUEST, "Choose Continue or Cancel."),
    };
    match location {
        Some(location) => see_other(&location),
        None => html_error(StatusCode::BAD_REQUEST, "The app's redirect_uri is not a URL."),
    }
}
