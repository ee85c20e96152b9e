//! The sandbox's Page editor at `/emulator`: change a Page "on Facebook" or have a
//! customer write to it, and the [`super::sender`] delivers what Meta would. Also the
//! page chrome the dialog and the install page share.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::Shared;
use super::data::DEMO_USER_ID;
use super::graph::pairs;
use super::sender::{carry_out, plan_delivery, plan_message};
use crate::html::{escape, html_page};

/// Longest name or category the editor takes.
const MAX_TEXT_CHARS: usize = 100;

/// Longest customer message the editor takes: Messenger's limit for a text message.
const MAX_MESSAGE_CHARS: usize = 2000;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(|| async { see_other("/emulator") }))
        .route("/emulator", web::get().to(editor))
        .route("/emulator/pages/{id}", web::post().to(save_page))
        .route("/emulator/pages/{id}/messages", web::post().to(send_message))
        .route("/emulator/pictures/{file}", web::get().to(picture));
}

/// What the emulator's pages add to the crate's plain page style: cards, buttons,
/// forms and notices, under a banner that says who serves the page.
const STYLE: &str = "<style>body{max-width:46rem}.banner{background:#fff4d6;border:1px solid #e7c66b;\
    padding:.4rem .8rem;border-radius:6px;font-size:.9rem}.card{border:1px solid #dadde1;border-radius:8px;\
    padding:1rem;margin:1rem 0}button{font-size:1rem;padding:.45rem 1rem;margin-right:.5rem;border-radius:6px;\
    border:1px solid #8a8d91;background:#fff}button.primary{background:#1877f2;color:#fff}label{display:block;\
    margin-top:.5rem;font-weight:600}input{font-size:1rem;padding:.3rem;width:100%;max-width:28rem}\
    #notice,.error{border:1px solid #1877f2;padding:.5rem .8rem;border-radius:6px}.error{border-color:#cf222e}\
    code{word-break:break-all}</style><p class=\"banner\">pagesync sandbox: this page is served by the \
    built-in emulator, not by Meta or Shopify.</p>";

/// An HTML page in the emulator's style; `body` is already escaped.
pub(super) fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html_page(title, &format!("{STYLE}{body}")))
}

/// An HTML error page (the platforms show these instead of redirecting when the
/// request itself is wrong).
pub(super) fn html_error(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!("<h1>Something went wrong</h1><p class=\"error\" id=\"error\">{}</p>", escape(message));
    html(status, "Error", &body)
}

/// A hidden form field.
pub(super) fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
}

/// `303 See Other` to `location`.
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// `url` with `params` appended to its query (form-encoded, `+` for spaces).
pub(super) fn with_query(url: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = reqwest::Url::parse(url).ok()?;
    url.query_pairs_mut().extend_pairs(params);
    Some(url.to_string())
}

/// `GET /emulator`: the Pages, a form per Page, the subscription and recent activity.
async fn editor(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let notice = pairs(req.query_string().as_bytes()).get("notice").and_then(|n| n.parse::<u64>().ok());
    let world = shared.lock();
    let config = &world.config;
    let mut body = format!(
        "<h1>Meta &amp; Shopify emulator</h1><p>Start as a merchant at <a id=\"start\" href=\"{}\">the Shopify \
         install</a>; the daemon's <a id=\"dashboard\" href=\"{}\">dashboard</a> shows the connected Pages. Editing a \
         Page below changes it \"on Facebook\" and sends Meta's signed webhook to pagesync.</p>",
        escape(&config.start_url),
        escape(&config.dashboard_url)
    );
    if !config.bot_url.is_empty() {
        body.push_str(&format!(
            "<p>\"Customer sends a message\" writes to a Page on Messenger; pagesync relays Meta's delivery to \
             the sandbox's <a id=\"bot\" href=\"{}\">demo bot</a>, which also shows the events pagesync sends.</p>",
            escape(&config.bot_url)
        ));
    }
    if let Some(entry) = notice.and_then(|n| world.activity.iter().find(|a| a.number == n)) {
        body.push_str(&format!("<p id=\"notice\" role=\"status\">{}</p>", escape(&entry.summary)));
    }
    let user = world.users.get(DEMO_USER_ID).map_or("", |u| u.name.as_str());
    body.push_str(&format!("<h2>Facebook Pages of {} (user {DEMO_USER_ID})</h2>", escape(user)));
    for (id, fields) in &world.pages {
        let text = |key: &str| escape(fields.get(key).and_then(Value::as_str).unwrap_or_default());
        let (id, name, category) = (escape(id), text("name"), text("category"));
        let installed = match world.installed.get(&*id) {
            Some(f) => format!("installed, fields: {}", escape(&f.join(", "))),
            None => "not installed".to_owned(),
        };
        body.push_str(&format!(
            "<section class=\"card\" id=\"page-{id}\"><h3>{name}</h3><p>Page {id} · {category} · \
             pagesync on this Page: <span class=\"installed\">{installed}</span></p>\
             <form id=\"edit-{id}\" method=\"post\" action=\"/emulator/pages/{id}\">\
             <label for=\"name-{id}\">Name</label>\
             <input id=\"name-{id}\" name=\"name\" value=\"{name}\" maxlength=\"{MAX_TEXT_CHARS}\" required>\
             <label for=\"category-{id}\">Category</label>\
             <input id=\"category-{id}\" name=\"category\" value=\"{category}\" maxlength=\"{MAX_TEXT_CHARS}\" \
             required><p><button class=\"primary\" type=\"submit\" id=\"save-{id}\">Save and notify \
             webhooks</button></p></form>\
             <form id=\"message-form-{id}\" method=\"post\" action=\"/emulator/pages/{id}/messages\">\
             <label for=\"message-text-{id}\">A customer writes to this Page on Messenger</label>\
             <input id=\"message-text-{id}\" name=\"text\" value=\"Hi! Do you ship to Canada?\" \
             maxlength=\"{MAX_MESSAGE_CHARS}\" required><p><button type=\"submit\" id=\"send-message-{id}\">\
             Customer sends a message</button></p></form></section>",
        ));
    }
    body.push_str("<h2>App webhook subscription</h2>");
    body.push_str(&match &world.app_subscription {
        Some(sub) => format!(
            "<p id=\"subscription\">object <code>page</code>, fields <code>{}</code>, include_values \
             <code>{}</code>, callback <code>{}</code> (verified)</p>",
            escape(&sub.fields.join(",")),
            sub.include_values,
            escape(&sub.callback_url)
        ),
        None => format!(
            "<p id=\"subscription\">None yet: pagesync subscribes when a merchant connects. Until then \
             deliveries go to <code>{}</code>.</p>",
            escape(&config.webhook_address)
        ),
    });
    if !world.activity.is_empty() {
        body.push_str("<h2>Recent changes and messages</h2><table id=\"activity\"><tr><th>#</th><th>Page</th><th>What happened</th></tr>");
        for entry in world.activity.iter().rev() {
            let (page, summary) = (escape(&entry.page), escape(&entry.summary));
            body.push_str(&format!("<tr><td>{}</td><td>{page}</td><td>{summary}</td></tr>", entry.number));
        }
        body.push_str("</table>");
    }
    drop(world);
    html(StatusCode::OK, "Emulator: Facebook Pages", &body)
}

/// A name, category or message typed into the editor: present, not blank, at most
/// `max` characters, no control characters.
fn check_text(label: &str, value: Option<&String>, max: usize) -> Result<String, String> {
    let value = value.ok_or_else(|| format!("{label} is missing"))?;
    if value.trim().is_empty() {
        return Err(format!("{label} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{label} must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{label} must not contain control characters"));
    }
    Ok(value.trim().to_owned())
}

/// `POST /emulator/pages/{id}`: changes a Page, delivers Meta's webhook when our app is
/// installed on it for a changed field, then back to the editor.
async fn save_page(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let id = path.into_inner();
    let form = pairs(&body);
    let checked = (
        check_text("Name", form.get("name"), MAX_TEXT_CHARS),
        check_text("Category", form.get("category"), MAX_TEXT_CHARS),
    );
    let (name, category) = match checked {
        (Ok(n), Ok(c)) => (n, c),
        (Err(e), _) | (_, Err(e)) => return html_error(StatusCode::BAD_REQUEST, &e),
    };
    let plan = {
        let mut world = shared.lock();
        let Some(fields) = world.pages.get_mut(&id) else {
            return html_error(StatusCode::NOT_FOUND, "There is no such Page in the emulator.");
        };
        let mut changed = Vec::new();
        if fields.get("name").and_then(Value::as_str) != Some(name.as_str()) {
            fields.insert("name".into(), json!(name));
            changed.push(("name".to_owned(), name));
        }
        if fields.get("category").and_then(Value::as_str) != Some(category.as_str()) {
            let cat_id =
                fields.get("category_list").and_then(|l| l.get(0)?.get("id").cloned()).unwrap_or(json!("2500"));
            fields.insert("category".into(), json!(category));
            fields.insert("category_list".into(), json!([{"id": cat_id, "name": category}]));
            changed.push(("category".to_owned(), category));
        }
        plan_delivery(&world, &id, changed)
    };
    let number = carry_out(&shared, &id, plan, "Saved.").await;
    see_other(&format!("/emulator?notice={number}#page-{id}"))
}

/// `POST /emulator/pages/{id}/messages`: a customer writes to the Page on Messenger.
async fn send_message(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let id = path.into_inner();
    let text = match check_text("Message", pairs(&body).get("text"), MAX_MESSAGE_CHARS) {
        Ok(text) => text,
        Err(e) => return html_error(StatusCode::BAD_REQUEST, &e),
    };
    let plan = {
        let world = shared.lock();
        if !world.pages.contains_key(&id) {
            return html_error(StatusCode::NOT_FOUND, "There is no such Page in the emulator.");
        }
        plan_message(&world, &id, &text)
    };
    let number = carry_out(&shared, &id, plan, "The customer's message reached the Page.").await;
    see_other(&format!("/emulator?notice={number}#page-{id}"))
}

/// `GET /emulator/pictures/{id}.svg`: the Page's profile picture (its initial).
async fn picture(path: web::Path<String>, shared: web::Data<Shared>) -> HttpResponse {
    let file = path.into_inner();
    let Some(id) = file.strip_suffix(".svg") else { return HttpResponse::NotFound().finish() };
    let Some(initial) = shared
        .lock()
        .pages
        .get(id)
        .map(|f| f.get("name").and_then(Value::as_str).and_then(|n| n.chars().next()).unwrap_or('?'))
    else {
        return HttpResponse::NotFound().finish();
    };
    let hue = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))) % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"50\" height=\"50\" viewBox=\"0 0 50 50\">\
         <circle cx=\"25\" cy=\"25\" r=\"25\" fill=\"hsl({hue},55%,45%)\"/><text x=\"25\" y=\"33\" \
         font-family=\"sans-serif\" font-size=\"24\" fill=\"#fff\" text-anchor=\"middle\">{}</text></svg>",
        escape(&initial.to_string())
    );
    HttpResponse::Ok().content_type("image/svg+xml").body(svg)
}
