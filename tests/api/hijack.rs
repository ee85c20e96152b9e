//! The Facebook callback belongs to the browser that started it (docs/contract.md §4 "Facebook
//! connect"): a connect link made from one shop's `/facebook/login` and completed in
//! another shop's browser, or in a browser with no session, binds nothing, exchanges no
//! code and leaves the clicker's session as it was.

use pagesync_actors::messages::{GetPageToken, PagesOfOwner};
use pagesync_actors::{PageId, UserId};

use crate::helpers::{TestApp, session_set_cookie, spawn_app, unique_shop};

const VICTIM_PAGE: (&str, &str) = ("777000000000001", "Victim's Page");

fn code_exchanges(app: &TestApp) -> usize {
    app.graph.calls().iter().filter(|c| c.is("GET", "/v25.0/oauth/access_token") && c.param("code").is_some()).count()
}

async fn owned(app: &TestApp, user: &str) -> Vec<PageId> {
    let owner = UserId::parse(user).unwrap();
    app.actors.vault.send(PagesOfOwner { owner }).await.unwrap().unwrap()
}

#[actix_web::test]
async fn a_connect_link_from_another_shop_is_refused_before_any_code_exchange() {
    let app = spawn_app().await;
    let attacker = app.install_shop(&unique_shop()).await;
    let victim = app.install_shop(&unique_shop()).await;
    // The attacker starts a connect and sends the dialog link to the victim, whose
    // browser completes it with the victim's own Facebook account and session.
    let state = app.facebook_state(&attacker.cookie).await;
    let fb_victim = app.graph.register_user(&[VICTIM_PAGE]);
    let code = app.graph.new_code(&fb_victim);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&victim.cookie)).await;
    assert_eq!(resp.status(), 400);
    assert!(session_set_cookie(&resp).is_none(), "the victim's browser got another session");
    assert_eq!(code_exchanges(&app), 0, "the code reached Meta");
    assert!(owned(&app, &attacker.user_uuid).await.is_empty(), "the victim's Page was bound to the attacker");
    let token = app.actors.vault.send(GetPageToken { page: PageId::parse(VICTIM_PAGE.0).unwrap() }).await.unwrap();
    assert!(token.unwrap().is_none(), "a Page token was stored");
    // The victim's session is untouched and still theirs.
    assert_eq!(app.facebook_login(Some(&victim.cookie)).await.status(), 302);
    assert_eq!(app.facebook_login(Some(&attacker.cookie)).await.status(), 302);
}

#[actix_web::test]
async fn a_connect_link_completed_without_a_session_is_refused() {
    let app = spawn_app().await;
    let attacker = app.install_shop(&unique_shop()).await;
    let state = app.facebook_state(&attacker.cookie).await;
    let fb_victim = app.graph.register_user(&[VICTIM_PAGE]);
    let code = app.graph.new_code(&fb_victim);
    for cookie in [None, Some("not-a-live-session-id")] {
        let resp = app.facebook_callback(&[("code", &code), ("state", &state)], cookie).await;
        assert_eq!(resp.status(), 400, "cookie {cookie:?}");
        assert!(session_set_cookie(&resp).is_none(), "a session was opened for the link's shop");
    }
    assert_eq!(code_exchanges(&app), 0, "the code reached Meta");
    assert!(owned(&app, &attacker.user_uuid).await.is_empty());
}

#[actix_web::test]
async fn the_owner_can_still_use_a_link_another_browser_was_refused_on() {
    // A refused foreign click must not burn the rightful owner's link.
    let app = spawn_app().await;
    let owner = app.install_shop(&unique_shop()).await;
    let other = app.install_shop(&unique_shop()).await;
    let state = app.facebook_state(&owner.cookie).await;
    let fb_user = app.graph.register_user(&[VICTIM_PAGE]);
    let code = app.graph.new_code(&fb_user);
    let refused = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&other.cookie)).await;
    assert_eq!(refused.status(), 400);
    let resp = app.facebook_callback(&[("code", &code), ("state", &state)], Some(&owner.cookie)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(owned(&app, &owner.user_uuid).await, vec![PageId::parse(VICTIM_PAGE.0).unwrap()]);
}

#[actix_web::test]
async fn facebook_logins_do_not_grow_the_database_and_each_state_is_used_once() {
    let app = spawn_app().await;
    let merchant = app.install_shop(&unique_shop()).await;
    let mut states = Vec::new();
    for _ in 0..200 {
        states.push(app.facebook_state(&merchant.cookie).await);
    }
    // One of them is used; the replay of the same state is refused.
    let fb_user = app.graph.register_user(&[VICTIM_PAGE]);
    let code = app.graph.new_code(&fb_user);
    let resp = app.facebook_callback(&[("code", &code), ("state", &states[7])], Some(&merchant.cookie)).await;
    assert_eq!(resp.status(), 200);
    let cookie = crate::helpers::session_cookie(&resp).unwrap();
    let code = app.graph.new_code(&fb_user);
    let replay = app.facebook_callback(&[("code", &code), ("state", &states[7])], Some(&cookie)).await;
    assert_eq!(replay.status(), 400);
    let (dir, _, _) = app.stop().await;
    assert_eq!(TestApp::tree_len(&dir, "facebook_nonces"), 1, "only the used state is remembered");
}
