//! HTTP surfaces, one file each. Handlers parse and verify input, then talk to the
//! actors through messages; they own no state.

pub mod api;
pub mod dashboard;
pub mod facebook;
pub mod ops;
pub mod shopify;
pub mod webhook;

/// Registers every route.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    cfg.route("/", web::get().to(dashboard::index))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/facebook/webhook", web::get().to(webhook::verify))
        .route("/facebook/webhook", web::post().to(webhook::receive))
        .route("/shopify/login", web::get().to(shopify::login))
        .route("/shopify/callback", web::get().to(shopify::callback))
        .route("/shopify/webhooks", web::post().to(shopify::webhooks))
        .route("/facebook/login", web::get().to(facebook::login))
        .route("/facebook/callback", web::get().to(facebook::callback))
        .route("/facebook/deauthorize", web::post().to(facebook::deauthorize))
        .route("/facebook/data-deletion", web::post().to(facebook::data_deletion))
        .route("/facebook/data-deletion/status", web::get().to(facebook::deletion_status))
        .service(
            web::scope("/api/v1")
                .route("/pages", web::get().to(api::list_pages))
                .route("/pages/{id}", web::get().to(api::get_page))
                .route("/pages/{id}/token", web::get().to(api::page_token))
                .route("/shops/{shop}/token", web::get().to(api::shop_token))
                .default_service(web::to(api::not_found)),
        );
}
