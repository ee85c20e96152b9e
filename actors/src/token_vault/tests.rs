//! TokenVaultActor: sealing, ownership, removals and key checks, on a temporary store.

use super::*;
use crate::ids::{FacebookUserId, ShopDomain};
use crate::seal::EncryptionKey;
use crate::store::StoreConfig;

fn vault() -> (tempfile::TempDir, Store, Addr<TokenVaultActor>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sealer = Sealer::new(&EncryptionKey::generate().unwrap());
    let addr = TokenVaultActor::new(store.clone(), sealer).unwrap().start();
    (dir, store, addr)
}

#[actix::test]
async fn tokens_round_trip_and_are_sealed_on_disk() {
    let (_dir, store, vault) = vault();
    let page = PageId::parse("42").unwrap();
    let owner = UserId::random();
    vault
        .send(StorePageToken { page: page.clone(), owner: owner.clone(), token: Secret::new("EAAG-page-token") })
        .await
        .unwrap()
        .unwrap();
    let creds = vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().unwrap();
    assert_eq!(creds.token.expose(), "EAAG-page-token");
    assert_eq!(creds.owner, owner);
    let raw = store.tree(trees::PAGE_TOKENS).unwrap().get(b"42").unwrap().unwrap();
    assert!(!raw.windows(4).any(|w| w == b"EAAG"), "token stored in clear");
}

#[actix::test]
async fn reseal_all_moves_every_record_to_the_new_key_or_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let old = Sealer::new(&EncryptionKey::generate().unwrap());
    let new = Sealer::new(&EncryptionKey::generate().unwrap());
    let vault = TokenVaultActor::new(store.clone(), old.clone()).unwrap().start();
    let owner = UserId::random();
    let page = PageId::parse("42").unwrap();
    vault
        .send(ConnectPages {
            owner: owner.clone(),
            fb_user: FacebookUserId::parse("1001").unwrap(),
            user_token: Secret::new("EAAG-user"),
            pages: vec![(page.clone(), Secret::new("EAAG-page"))],
        })
        .await
        .unwrap()
        .unwrap();
    let shop = ShopDomain::parse("rotating.myshopify.com").unwrap();
    let token = ShopToken {
        access_token: Secret::new("shpat_x"),
        scope: "read_products".into(),
        refresh_token: None,
        expires_at: None,
        refresh_expires_at: None,
    };
    vault.send(StoreShopToken { shop: shop.clone(), token }).await.unwrap().unwrap();

    // A wrong "old" key: an error, and every record still opens with the real one.
    let stranger = Sealer::new(&EncryptionKey::generate().unwrap());
    assert!(matches!(reseal_all(&store, &stranger, &new), Err(VaultError::Seal(_))));
    assert_eq!(
        vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().unwrap().token.expose(),
        "EAAG-page"
    );

    assert_eq!(reseal_all(&store, &old, &new).unwrap(), 3);
    let open = |tree: &str, record: String, key: &[u8]| {
        let raw = store
            .tree(match tree {
                "p" => trees::PAGE_TOKENS,
                "u" => trees::USER_TOKENS,
                _ => trees::SHOP_TOKENS,
            })
            .unwrap()
            .get(key)
            .unwrap()
            .unwrap();
        (new.open(record.as_bytes(), &raw), old.open(record.as_bytes(), &raw))
    };
    let (with_new, with_old) = open("p", "page_token/42".into(), b"42");
    assert_eq!(with_new.unwrap(), b"EAAG-page");
    assert!(with_old.is_err(), "the old key still opens a re-sealed record");
    let (with_new, _) = open("u", format!("user_token/{owner}"), owner.as_str().as_bytes());
    assert!(String::from_utf8(with_new.unwrap()).unwrap().contains("EAAG-user"));
    let (with_new, _) = open("s", format!("shop_token/{shop}"), shop.as_str().as_bytes());
    assert!(String::from_utf8(with_new.unwrap()).unwrap().contains("shpat_x"));
    // A vault on the new key reads the Page token.
    let vault = TokenVaultActor::new(store.clone(), new).unwrap().start();
    assert_eq!(vault.send(GetPageToken { page }).await.unwrap().unwrap().unwrap().token.expose(), "EAAG-page");
}

#[actix::test]
async fn a_page_moving_to_another_owner_is_rebound_not_duplicated() {
    let (_dir, _store, vault) = vault();
    let page = PageId::parse("42").unwrap();
    let (a, b) = (UserId::random(), UserId::random());
    for (owner, token) in [(&a, "t1"), (&b, "t2")] {
        vault
            .send(StorePageToken { page: page.clone(), owner: owner.clone(), token: Secret::new(token) })
            .await
            .unwrap()
            .unwrap();
    }
    let pages = vault.send(ListPages).await.unwrap().unwrap();
    assert_eq!(pages, vec![(page.clone(), b.clone())]);
    assert_eq!(vault.send(OwnerOfPage { page: page.clone() }).await.unwrap().unwrap(), Some(b.clone()));
    let stranger = PageId::parse("43").unwrap();
    assert_eq!(vault.send(OwnerOfPage { page: stranger }).await.unwrap().unwrap(), None);
    let creds = vault.send(GetPageToken { page }).await.unwrap().unwrap().unwrap();
    assert_eq!(creds.token.expose(), "t2");
}

#[actix::test]
async fn a_tampered_token_record_is_an_error_not_a_wrong_token() {
    let (_dir, store, vault) = vault();
    let page = PageId::parse("42").unwrap();
    vault
        .send(StorePageToken { page: page.clone(), owner: UserId::random(), token: Secret::new("t") })
        .await
        .unwrap()
        .unwrap();
    let tree = store.tree(trees::PAGE_TOKENS).unwrap();
    let mut raw = tree.get(b"42").unwrap().unwrap().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    tree.insert(b"42", raw).unwrap();
    let err = vault.send(GetPageToken { page }).await.unwrap().unwrap_err();
    assert!(matches!(err, VaultError::Seal(_)), "{err:?}");
}

#[actix::test]
async fn forgetting_a_facebook_user_removes_only_the_tokens_they_granted() {
    let (_dir, _store, vault) = vault();
    let (a, b) = (UserId::random(), UserId::random());
    let page = |s: &str| PageId::parse(s).unwrap();
    for (owner, fb, pages) in [(&a, "100", vec!["1", "2"]), (&b, "200", vec!["3"])] {
        vault
            .send(ConnectPages {
                owner: owner.clone(),
                fb_user: FacebookUserId::parse(fb).unwrap(),
                user_token: Secret::new(format!("user-{fb}")),
                pages: pages.iter().map(|p| (page(p), Secret::new(format!("page-{p}")))).collect(),
            })
            .await
            .unwrap()
            .unwrap();
    }
    let gone = vault
        .send(ForgetFacebookUser { fb_user: FacebookUserId::parse("100").unwrap(), issued_at: None })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone, Removal::Forgotten(vec![page("1"), page("2")]));
    assert!(vault.send(GetPageToken { page: page("1") }).await.unwrap().unwrap().is_none());
    assert!(vault.send(GetPageToken { page: page("3") }).await.unwrap().unwrap().is_some());
    // Ownership stays: the merchant still sees the Pages.
    assert_eq!(vault.send(PagesOfOwner { owner: a.clone() }).await.unwrap().unwrap(), vec![page("1"), page("2")]);
    let all = vault.send(ForgetOwner { owner: a.clone() }).await.unwrap().unwrap();
    assert_eq!(all, vec![page("1"), page("2")]);
    assert!(vault.send(PagesOfOwner { owner: a }).await.unwrap().unwrap().is_empty());
    assert_eq!(vault.send(PagesOfOwner { owner: b }).await.unwrap().unwrap(), vec![page("3")]);
}

#[actix::test]
async fn shop_tokens_are_sealed_and_forgettable() {
    let (_dir, store, vault) = vault();
    let shop = ShopDomain::parse("a.myshopify.com").unwrap();
    let token = ShopToken {
        access_token: Secret::new("shpat_secret_value"),
        scope: "read_products".into(),
        refresh_token: Some(Secret::new("shprt_secret_value")),
        expires_at: Some(1),
        refresh_expires_at: Some(2),
    };
    vault.send(StoreShopToken { shop: shop.clone(), token }).await.unwrap().unwrap();
    assert!(vault.send(HasShopToken { shop: shop.clone() }).await.unwrap().unwrap());
    let opened = vault.send(GetShopToken { shop: shop.clone() }).await.unwrap().unwrap().unwrap();
    assert_eq!(opened.access_token.expose(), "shpat_secret_value");
    assert_eq!(opened.scope, "read_products");
    let raw = store.tree(trees::SHOP_TOKENS).unwrap().get(shop.as_str()).unwrap().unwrap();
    assert!(!raw.windows(6).any(|w| w == b"shpat_" || w == b"shprt_"));
    vault.send(ForgetShopToken { shop: shop.clone() }).await.unwrap().unwrap();
    assert!(vault.send(GetShopToken { shop: shop.clone() }).await.unwrap().unwrap().is_none());
    assert!(!vault.send(HasShopToken { shop }).await.unwrap().unwrap());
}

#[actix::test]
async fn unknown_and_forgotten_pages_have_no_token() {
    let (_dir, _store, vault) = vault();
    let page = PageId::parse("7").unwrap();
    assert!(vault.send(GetPageToken { page: page.clone() }).await.unwrap().unwrap().is_none());
    vault
        .send(StorePageToken { page: page.clone(), owner: UserId::random(), token: Secret::new("t") })
        .await
        .unwrap()
        .unwrap();
    vault.send(ForgetPage { page: page.clone() }).await.unwrap().unwrap();
    vault.send(ForgetPage { page: page.clone() }).await.unwrap().unwrap();
    assert!(vault.send(GetPageToken { page }).await.unwrap().unwrap().is_none());
}

#[actix::test]
async fn a_store_from_before_the_index_is_indexed_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let sealer = Sealer::new(&EncryptionKey::generate().unwrap());
    let owner = UserId::random();
    // The earlier layout: tokens, owners, grantors, no index.
    for page in ["1", "2"] {
        let sealed = sealer.seal(format!("page_token/{page}").as_bytes(), b"t").unwrap();
        store.tree(trees::PAGE_TOKENS).unwrap().insert(page, sealed).unwrap();
        store.tree(trees::PAGE_OWNER).unwrap().insert(page, owner.as_str()).unwrap();
        store.tree(trees::PAGE_GRANTOR).unwrap().insert(page, "100").unwrap();
    }
    let vault = TokenVaultActor::new(store.clone(), sealer).unwrap().start();
    let page = |s: &str| PageId::parse(s).unwrap();
    assert_eq!(vault.send(PagesOfOwner { owner: owner.clone() }).await.unwrap().unwrap(), vec![page("1"), page("2")]);
    let gone = vault
        .send(ForgetFacebookUser { fb_user: FacebookUserId::parse("100").unwrap(), issued_at: None })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone, Removal::Forgotten(vec![page("1"), page("2")]));
    assert_eq!(vault.send(ForgetOwner { owner }).await.unwrap().unwrap(), vec![page("1"), page("2")]);
}

#[actix::test]
async fn a_page_moved_to_another_merchant_leaves_the_first_ones_index() {
    let (_dir, _store, vault) = vault();
    let (a, b) = (UserId::random(), UserId::random());
    let page = PageId::parse("9").unwrap();
    for (owner, fb) in [(&a, "100"), (&b, "200")] {
        vault
            .send(ConnectPages {
                owner: owner.clone(),
                fb_user: FacebookUserId::parse(fb).unwrap(),
                user_token: Secret::new("u"),
                pages: vec![(page.clone(), Secret::new("p"))],
            })
            .await
            .unwrap()
            .unwrap();
    }
    assert!(vault.send(PagesOfOwner { owner: a }).await.unwrap().unwrap().is_empty());
    assert_eq!(vault.send(PagesOfOwner { owner: b }).await.unwrap().unwrap(), vec![page.clone()]);
    // The first grantor no longer reaches the Page.
    let first = vault
        .send(ForgetFacebookUser { fb_user: FacebookUserId::parse("100").unwrap(), issued_at: None })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, Removal::Forgotten(vec![]));
    assert!(vault.send(GetPageToken { page }).await.unwrap().unwrap().is_some());
}

#[actix::test]
async fn a_removal_issued_before_the_latest_connect_is_superseded() {
    let (_dir, _store, vault) = vault();
    let fb_user = FacebookUserId::parse("100").unwrap();
    let before = now();
    vault
        .send(ConnectPages {
            owner: UserId::random(),
            fb_user: fb_user.clone(),
            user_token: Secret::new("u"),
            pages: vec![(PageId::parse("1").unwrap(), Secret::new("p"))],
        })
        .await
        .unwrap()
        .unwrap();
    let replay = ForgetFacebookUser { fb_user: fb_user.clone(), issued_at: Some(before.saturating_sub(1)) };
    assert!(matches!(vault.send(replay).await.unwrap().unwrap(), Removal::Superseded { .. }));
    assert!(vault.send(GetPageToken { page: PageId::parse("1").unwrap() }).await.unwrap().unwrap().is_some());
    let fresh = ForgetFacebookUser { fb_user, issued_at: Some(now() + 1) };
    assert_eq!(vault.send(fresh).await.unwrap().unwrap(), Removal::Forgotten(vec![PageId::parse("1").unwrap()]));
}

#[test]
fn the_store_remembers_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path().join("db"))).unwrap();
    let (right, wrong) =
        (Sealer::new(&EncryptionKey::generate().unwrap()), Sealer::new(&EncryptionKey::generate().unwrap()));
    // A store from before check records: a sealed token and no check.
    let sealed = right.seal(b"page_token/1", b"t").unwrap();
    store.tree(trees::PAGE_TOKENS).unwrap().insert("1", sealed).unwrap();
    let err = verify_key(&store, &wrong).unwrap_err();
    assert!(matches!(err, KeyCheckError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("PAGESYNC_ENCRYPTION_KEY"));
    assert!(store.tree(trees::VAULT_META).unwrap().is_empty(), "no check record for a key that does not open");
    verify_key(&store, &right).unwrap();
    verify_key(&store, &right).unwrap();
    // With the check record, the wrong key is refused even with no token left.
    store.tree(trees::PAGE_TOKENS).unwrap().clear().unwrap();
    assert!(matches!(verify_key(&store, &wrong), Err(KeyCheckError::WrongKey { .. })));
    // Rotation moves the check to the new key; the wrong "old" key changes nothing.
    assert!(reseal_all(&store, &wrong, &right).is_err());
    reseal_all(&store, &right, &wrong).unwrap();
    verify_key(&store, &wrong).unwrap();
    assert!(verify_key(&store, &right).is_err());
}

#[actix::test]
async fn the_page_list_comes_in_slices_that_cover_every_page_once() {
    let (_dir, _store, vault) = vault();
    let (a, b) = (UserId::random(), UserId::random());
    let ids: Vec<String> = (10..27).map(|n| n.to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        let owner = if i % 3 == 0 { b.clone() } else { a.clone() };
        let msg = StorePageToken { page: PageId::parse(id).unwrap(), owner, token: Secret::new(format!("t{id}")) };
        vault.send(msg).await.unwrap().unwrap();
    }
    let everything = vault.send(ListPages).await.unwrap().unwrap();
    for owner in [None, Some(a.clone()), Some(b.clone())] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut slices = 0;
        loop {
            let msg = ListPagesFrom { owner: owner.clone(), after: after.clone(), limit: 4 };
            let slice = vault.send(msg).await.unwrap().unwrap();
            assert!(slice.pages.len() <= 4);
            assert_eq!(slice.next.is_some(), slice.next.as_ref() == slice.pages.last().map(|(p, _)| p));
            seen.extend(slice.pages);
            slices += 1;
            match slice.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<(PageId, UserId)> =
            everything.iter().filter(|(_, o)| owner.as_ref().is_none_or(|w| w == o)).cloned().collect();
        assert_eq!(seen, expected, "owner {owner:?}");
        assert_eq!(slices, expected.len().div_ceil(4).max(1), "no empty slice at the end");
    }
    // A cursor past the end, and an owner with no Pages: empty, no next.
    let past = ListPagesFrom { owner: None, after: Some(PageId::parse("99").unwrap()), limit: 4 };
    assert_eq!(vault.send(past).await.unwrap().unwrap(), PageSlice::default());
    let nobody = ListPagesFrom { owner: Some(UserId::random()), after: None, limit: 4 };
    assert_eq!(vault.send(nobody).await.unwrap().unwrap(), PageSlice::default());
}

/// Pages 10 to 26, one owner (returned), each with a token.
async fn seventeen_pages(vault: &Addr<TokenVaultActor>) -> UserId {
    let owner = UserId::random();
    for n in 10..27 {
        let msg = StorePageToken {
            page: PageId::parse(&n.to_string()).unwrap(),
            owner: owner.clone(),
            token: Secret::new("t"),
        };
        vault.send(msg).await.unwrap().unwrap();
    }
    owner
}

#[actix::test]
async fn pages_are_counted_in_steps_that_agree_with_the_list() {
    let (_dir, store, vault) = vault();
    let owner = seventeen_pages(&vault).await;
    // A key that is not a Page id is neither listed nor counted.
    store.tree(trees::PAGE_OWNER).unwrap().insert(b"12a", owner.to_string().as_bytes()).unwrap();
    let everything = vault.send(ListPages).await.unwrap().unwrap();
    assert_eq!(everything.len(), 17);
    for step in [1, 4, 17, 100] {
        let (mut total, mut after, mut steps) = (0, None, 0);
        loop {
            let count = vault.send(CountPages { after: after.clone(), limit: step }).await.unwrap().unwrap();
            assert!(count.pages <= step);
            total += count.pages;
            steps += 1;
            match count.next {
                Some(next) => {
                    // The cursor is the last Page counted so far, as the list has it.
                    assert_eq!(Some(&next), everything.get(total - 1).map(|(p, _)| p), "step {step}");
                    after = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(total, everything.len(), "step {step}");
        assert_eq!(steps, everything.len().div_ceil(step), "step {step}: no empty step at the end");
    }
    let past = CountPages { after: Some(PageId::parse("99").unwrap()), limit: 4 };
    assert_eq!(vault.send(past).await.unwrap().unwrap(), PageCount::default());
    // A limit of 0 counts as 1, like the list's.
    let zero = vault.send(CountPages { after: None, limit: 0 }).await.unwrap().unwrap();
    assert_eq!((zero.pages, zero.next), (1, Some(PageId::parse("10").unwrap())));
}

#[actix::test]
async fn a_malformed_record_in_a_slice_does_not_end_the_list_early() {
    let (_dir, store, vault) = vault();
    let owner = seventeen_pages(&vault).await;
    // Records no vault writes, one in the Page list and one in the owner's index rows:
    // each sits inside the first slice of 4, which must still lead on to the rest.
    store.tree(trees::PAGE_OWNER).unwrap().insert(b"12a", owner.to_string().as_bytes()).unwrap();
    store.tree(trees::VAULT_INDEX).unwrap().insert(format!("o/{owner}/12a").as_bytes(), b"".as_slice()).unwrap();
    for who in [None, Some(owner.clone())] {
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let slice = vault
                .send(ListPagesFrom { owner: who.clone(), after: after.clone(), limit: 4 })
                .await
                .unwrap()
                .unwrap();
            seen.extend(slice.pages.into_iter().map(|(p, _)| p.as_str().to_owned()));
            match slice.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (10..27).map(|n| n.to_string()).collect();
        assert_eq!(seen, expected, "owner {who:?}");
    }
}
