//! SessionActor: sessions, used states, indexes and the sweep, on a temporary store.

use super::*;
use crate::store::StoreConfig;

fn actor(ttl: Duration) -> (tempfile::TempDir, Addr<SessionActor>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    (dir, SessionActor::new(store, ttl).unwrap().start())
}

fn shop(s: &str) -> ShopDomain {
    ShopDomain::parse(s).unwrap()
}

#[actix::test]
async fn a_shopify_state_can_be_used_once() {
    let (_d, a) = actor(Duration::from_secs(60));
    let expires_at = now() + 600;
    let first = a.send(UseShopifyState { nonce: "00ff".into(), expires_at }).await.unwrap();
    assert_eq!(first, Ok(()));
    let again = a.send(UseShopifyState { nonce: "00ff".into(), expires_at }).await.unwrap();
    assert_eq!(again, Err(StateError::Used));
    let other = a.send(UseShopifyState { nonce: "01ff".into(), expires_at }).await.unwrap();
    assert_eq!(other, Ok(()));
    let late = a.send(UseShopifyState { nonce: "02ff".into(), expires_at: now() - 1 }).await.unwrap();
    assert_eq!(late, Err(StateError::Expired));
}

#[actix::test]
async fn handled_webhook_ids_and_install_times_are_remembered() {
    let (_d, a) = actor(Duration::from_secs(60));
    assert!(!a.send(ShopifyWebhookHandled { id: "w1".into() }).await.unwrap().unwrap());
    a.send(RememberShopifyWebhook { id: "w1".into() }).await.unwrap().unwrap();
    assert!(a.send(ShopifyWebhookHandled { id: "w1".into() }).await.unwrap().unwrap());
    assert!(!a.send(ShopifyWebhookHandled { id: "w2".into() }).await.unwrap().unwrap());

    let s = shop("a.myshopify.com");
    assert_eq!(a.send(LatestInstall { shop: s.clone() }).await.unwrap().unwrap(), None);
    a.send(RecordInstall { shop: s.clone(), at_millis: 5_000 }).await.unwrap().unwrap();
    a.send(RecordInstall { shop: s.clone(), at_millis: 3_000 }).await.unwrap().unwrap();
    assert_eq!(a.send(LatestInstall { shop: s.clone() }).await.unwrap().unwrap(), Some(5_000), "latest kept");
    a.send(ForgetShop { shop: s.clone(), erase: true }).await.unwrap().unwrap();
    assert_eq!(a.send(LatestInstall { shop: s }).await.unwrap().unwrap(), None, "erased with the shop");
}

#[actix::test]
async fn a_shop_keeps_its_uuid_until_erased() {
    let (_d, a) = actor(Duration::from_secs(60));
    let s = shop("a.myshopify.com");
    let first = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
    let second = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(a.send(ForgetShop { shop: s.clone(), erase: false }).await.unwrap().unwrap(), Some(first.clone()));
    assert_eq!(a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap(), first);
    a.send(ForgetShop { shop: s.clone(), erase: true }).await.unwrap().unwrap();
    assert_ne!(a.send(RegisterShop { shop: s }).await.unwrap().unwrap(), first);
}

#[actix::test]
async fn sessions_rotate_and_end_with_their_shop() {
    let (_d, a) = actor(Duration::from_secs(60));
    let s = shop("a.myshopify.com");
    let user = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
    let id = a.send(OpenSession { user: user.clone(), shop: s.clone() }).await.unwrap().unwrap();
    assert!(id.expose().len() >= 43, "256 bits, base64url");
    let info = a.send(CheckSession { id: id.clone() }).await.unwrap().unwrap().unwrap();
    assert_eq!(info.user, user);
    let new =
        a.send(RotateSession { old: Some(id.clone()), user: user.clone(), shop: s.clone() }).await.unwrap().unwrap();
    assert!(a.send(CheckSession { id }).await.unwrap().unwrap().is_none(), "old id is dead");
    assert!(a.send(CheckSession { id: new.clone() }).await.unwrap().unwrap().is_some());
    a.send(ForgetShop { shop: s, erase: false }).await.unwrap().unwrap();
    assert!(a.send(CheckSession { id: new }).await.unwrap().unwrap().is_none());
}

#[actix::test]
async fn expired_sessions_are_refused() {
    let (_d, a) = actor(Duration::ZERO);
    let s = shop("a.myshopify.com");
    let user = a.send(RegisterShop { shop: s.clone() }).await.unwrap().unwrap();
    let id = a.send(OpenSession { user, shop: s }).await.unwrap().unwrap();
    // A zero TTL expires at the next second boundary.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        if a.send(CheckSession { id: id.clone() }).await.unwrap().unwrap().is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "session never expired");
        actix::clock::sleep(Duration::from_millis(50)).await;
    }
}

fn keys(store: &Store, tree: &'static str) -> Vec<Vec<u8>> {
    store.tree(tree).unwrap().iter().keys().map(|k| k.unwrap().to_vec()).collect()
}

#[actix::test]
async fn shop_of_user_and_forget_shop_go_through_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let a = SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap().start();
    let (sa, sb) = (shop("a.myshopify.com"), shop("b.myshopify.com"));
    let ua = a.send(RegisterShop { shop: sa.clone() }).await.unwrap().unwrap();
    let ub = a.send(RegisterShop { shop: sb.clone() }).await.unwrap().unwrap();
    let ida = a.send(OpenSession { user: ua.clone(), shop: sa.clone() }).await.unwrap().unwrap();
    let ida2 = a.send(OpenSession { user: ua.clone(), shop: sa.clone() }).await.unwrap().unwrap();
    let idb = a.send(OpenSession { user: ub.clone(), shop: sb.clone() }).await.unwrap().unwrap();

    assert_eq!(a.send(ShopOfUser { user: ua.clone() }).await.unwrap().unwrap(), Some(sa.clone()));
    assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), Some(sb.clone()));
    assert_eq!(a.send(ShopOfUser { user: UserId::random() }).await.unwrap().unwrap(), None);
    assert_eq!(a.send(UserOfShop { shop: sb.clone() }).await.unwrap().unwrap(), Some(ub.clone()));
    assert_eq!(a.send(UserOfShop { shop: shop("c.myshopify.com") }).await.unwrap().unwrap(), None);
    let indexed: Vec<Vec<u8>> =
        keys(&store, trees::SHOP_SESSIONS).into_iter().filter(|k| k.starts_with(b"a.myshopify.com/")).collect();
    assert_eq!(indexed.len(), 2, "a's two sessions are in its index");

    // The answer comes from the index: without its entry the shop is not found,
    // although `shops` still binds it.
    store.tree(trees::SHOPS_BY_USER).unwrap().remove(ub.as_str()).unwrap();
    assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), None);

    assert_eq!(a.send(ForgetShop { shop: sa.clone(), erase: true }).await.unwrap().unwrap(), Some(ua.clone()));
    for id in [ida, ida2] {
        assert!(a.send(CheckSession { id }).await.unwrap().unwrap().is_none(), "a's sessions end");
    }
    assert!(a.send(CheckSession { id: idb }).await.unwrap().unwrap().is_some(), "b's session lives");
    assert_eq!(a.send(ShopOfUser { user: ua }).await.unwrap().unwrap(), None);
    let left = keys(&store, trees::SHOP_SESSIONS);
    assert_eq!(left.len(), 1, "only b's entry is left");
    assert!(left[0].starts_with(b"b.myshopify.com/"));
}

#[actix::test]
async fn a_store_from_before_the_indexes_gets_them_built_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    // The old layout: records only, no index, no version.
    let (sa, sb) = (shop("a.myshopify.com"), shop("b.myshopify.com"));
    let (ua, ub) = (UserId::random(), UserId::random());
    store.tree(trees::SHOPS).unwrap().insert(sa.as_str(), ua.as_str()).unwrap();
    store.tree(trees::SHOPS).unwrap().insert(sb.as_str(), ub.as_str()).unwrap();
    let sessions = store.tree(trees::SESSIONS).unwrap();
    let live = now() + 3600;
    let ids: Vec<Secret> = ["old-a-1", "old-a-2", "old-b"].into_iter().map(Secret::new).collect();
    for (id, user, shop) in [(&ids[0], &ua, &sa), (&ids[1], &ua, &sa), (&ids[2], &ub, &sb)] {
        let info = SessionInfo { user: user.clone(), shop: shop.clone(), expires_at: live };
        sessions.insert(SessionActor::session_key(id), serde_json::to_vec(&info).unwrap()).unwrap();
    }
    let expired = SessionInfo { user: ub.clone(), shop: sb.clone(), expires_at: 10 };
    sessions
        .insert(SessionActor::session_key(&Secret::new("old-expired")), serde_json::to_vec(&expired).unwrap())
        .unwrap();
    sessions.insert(b"garbage", b"not json").unwrap();
    let old_state = serde_json::json!({"bound_to": sa.as_str(), "expires_at": live}).to_string();
    store.tree(trees::SHOPIFY_STATES).unwrap().insert(b"0123abcd", old_state.as_bytes()).unwrap();

    let actor = SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap();
    assert_eq!(keys(&store, trees::SHOPS_BY_USER).len(), 2);
    assert_eq!(keys(&store, trees::SHOP_SESSIONS).len(), 4, "every readable session is indexed");
    assert!(keys(&store, trees::SHOPIFY_STATES).is_empty(), "issued-but-unused states of the old layout go");
    assert!(!keys(&store, trees::SESSIONS).contains(&b"garbage".to_vec()));
    // The old expired session goes with the first sweep, through the index.
    assert_eq!(actor.sweep_at(now()), 1);
    assert_eq!(keys(&store, trees::SESSIONS).len(), 3);

    let a = actor.start();
    assert_eq!(a.send(ShopOfUser { user: ua.clone() }).await.unwrap().unwrap(), Some(sa.clone()));
    assert_eq!(a.send(ShopOfUser { user: ub.clone() }).await.unwrap().unwrap(), Some(sb.clone()));
    a.send(ForgetShop { shop: sa.clone(), erase: false }).await.unwrap().unwrap();
    assert!(a.send(CheckSession { id: ids[0].clone() }).await.unwrap().unwrap().is_none());
    assert!(a.send(CheckSession { id: ids[1].clone() }).await.unwrap().unwrap().is_none());
    assert!(a.send(CheckSession { id: ids[2].clone() }).await.unwrap().unwrap().is_some());
    a.send(crate::messages::Shutdown).await.unwrap();

    // Built once: a second start leaves an index entry it did not write alone.
    store.tree(trees::SHOPS_BY_USER).unwrap().insert(b"marker", b"x").unwrap();
    SessionActor::new(store.clone(), Duration::from_secs(60)).unwrap();
    assert!(keys(&store, trees::SHOPS_BY_USER).contains(&b"marker".to_vec()), "the index was rebuilt");
}

#[actix::test]
async fn the_sweep_removes_exactly_what_expired_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let actor = SessionActor::new(store.clone(), Duration::from_secs(100)).unwrap();
    let s = shop("a.myshopify.com");
    let user = UserId::random();
    let t = now();
    actor.new_session(&user, &s).unwrap(); // expires at t + 100
    actor.use_shopify_state("aa", t + 50, t).unwrap();
    actor.use_shopify_state("bb", t + 500, t).unwrap();
    actor.remember_webhook("w", t).unwrap(); // expires at t + 48 h
    actor.use_once(&actor.facebook_nonces, kind::FACEBOOK_NONCE, "cc", t + 600, t).unwrap();
    let again = actor.use_once(&actor.facebook_nonces, kind::FACEBOOK_NONCE, "cc", t + 600, t);
    assert_eq!(again, Err(StateError::Used), "a Facebook nonce is single use");

    assert_eq!(actor.sweep_at(t), 0, "nothing has expired yet");
    assert_eq!(actor.sweep_at(t + 60), 1, "the first used state");
    assert_eq!(keys(&store, trees::SHOPIFY_STATES), vec![b"bb".to_vec()]);
    assert_eq!(actor.sweep_at(t + 200), 1, "the session");
    assert!(keys(&store, trees::SESSIONS).is_empty());
    assert!(keys(&store, trees::SHOP_SESSIONS).is_empty(), "with its index entry");
    assert_eq!(actor.sweep_at(t + 1000), 2, "the second state and the Facebook nonce");
    assert_eq!(actor.sweep_at(t + WEBHOOK_ID_TTL.as_secs() + 1), 1, "the webhook id");
    assert!(keys(&store, trees::SHOPIFY_WEBHOOKS).is_empty());
    assert!(keys(&store, trees::SESSION_EXPIRIES).is_empty(), "the index is empty again");
}
