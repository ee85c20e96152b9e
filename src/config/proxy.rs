//! Which proxy, if any, an outgoing request goes through (docs/contract.md §5).
//!
//! reqwest on its own reads `HTTP_PROXY` and friends from the process environment and
//! sends every target through them, loopback included: with a proxy set, Shopify's
//! `client_secret` and Graph tokens bound for a local emulator or a test server would
//! pass through it. So the HTTP client is built with `.no_proxy()` (nothing from the
//! environment behind our back) plus one [`reqwest::Proxy::custom`] that asks
//! [`ProxySettings::proxy_for`]. The variables are read through the same
//! [`crate::config::Sources`] as every other setting (flags > environment > `.env`),
//! so tests pass them in without touching the process environment.
//!
//! The rules, in order:
//! 1. a loopback target (127.0.0.0/8, `::1`, the unspecified address, `localhost`,
//!    `*.localhost`) never goes through a proxy, whatever `NO_PROXY` says;
//! 2. a target `NO_PROXY` names goes direct: `*` (everything), a host name (`example.com`
//!    matches it and its subdomains, as do `.example.com` and `*.example.com`), an IP
//!    address, or a CIDR range (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port`;
//! 3. otherwise `https` targets use `HTTPS_PROXY`, `http` targets `HTTP_PROXY`, either
//!    falling back to `ALL_PROXY`; no variable, no proxy.
//!
//! Each variable may be spelled in capitals or in lower case; the capitals win when both
//! are set. An empty value counts as unset. A proxy URL may carry credentials
//! (`http://user:pass@proxy:3128`): they are sent to the proxy, never logged —
//! [`ProxyUrl`]'s `Debug` and `Display` show `***` instead.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// The variables read, capitals first (the spelling that wins).
pub const PROXY_VARS: &[&str] =
    &["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

/// A proxy's URL; its credentials never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    /// The URL itself, credentials included (for the HTTP client only).
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let credentials = !url.username().is_empty() || url.password().is_some();
        write!(f, "{}://{}{}", url.scheme(), if credentials { "***@" } else { "" }, url.host_str().unwrap_or(""))?;
        match url.port() {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// `*`.
    Everything,
    /// A host name and its subdomains (lower case, no leading or trailing dot).
    Domain {
        name: String,
        port: Option<u16>,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    /// A CIDR range.
    Net {
        net: IpAddr,
        prefix: u8,
    },
}

/// The proxies in force, already validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// For `http://` targets: `HTTP_PROXY`, else `ALL_PROXY`.
    http: Option<ProxyUrl>,
    /// For `https://` targets: `HTTPS_PROXY`, else `ALL_PROXY`.
    https: Option<ProxyUrl>,
    no_proxy: Vec<Rule>,
}

impl ProxySettings {
    /// Reads the variables through `get` (a name to its winning value) and validates
    /// them; every problem names its variable and never quotes a value (a proxy URL may
    /// hold a password).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ProxySettings, Vec<String>> {
        // Capitals first, then lower case; an empty value is unset.
        let var = |upper: &'static str, lower: &'static str| {
            [upper, lower].into_iter().find_map(|name| get(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v)))
        };
        let mut problems = Vec::new();
        let mut proxy = |found: Option<(&'static str, String)>| match found {
            None => None,
            Some((name, value)) => match parse_proxy_url(&value) {
                Ok(url) => Some(ProxyUrl(url)),
                Err(why) => {
                    problems.push(format!("{name}: {why}"));
                    None
                }
            },
        };
        let all = proxy(var("ALL_PROXY", "all_proxy"));
        let http = proxy(var("HTTP_PROXY", "http_proxy")).or_else(|| all.clone());
        let https = proxy(var("HTTPS_PROXY", "https_proxy")).or(all);
        let mut no_proxy = Vec::new();
        if let Some((name, value)) = var("NO_PROXY", "no_proxy") {
            for (index, entry) in value.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
                match parse_rule(entry) {
                    Some(rule) => no_proxy.push(rule),
                    None => problems.push(format!(
                        "{name}: entry {} is not a host name, an IP address, a CIDR range or *",
                        index + 1
                    )),
                }
            }
        }
        if problems.is_empty() { Ok(ProxySettings { http, https, no_proxy }) } else { Err(problems) }
    }

    /// No proxy configured at all.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request to `target` goes through, or `None` for a direct connection
    /// (see the module docs for the rules).
    pub fn proxy_for(&self, target: &Url) -> Option<&ProxyUrl> {
        if is_loopback(target) {
            return None;
        }
        let proxy = match target.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        if self.no_proxy.iter().any(|rule| rule.matches(target)) {
            return None;
        }
        Some(proxy)
    }

    /// Applies these settings to a client under construction: nothing is read from
    /// the environment, and each request asks [`ProxySettings::proxy_for`].
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let builder = builder.no_proxy();
        if self.is_empty() {
            return builder;
        }
        let settings = self.clone();
        builder.proxy(reqwest::Proxy::custom(move |target| settings.proxy_for(target).map(|p| p.url().clone())))
    }
}

/// A target on this machine: 127.0.0.0/8, `::1` (also as `::ffff:127.x.y.z`), the
/// unspecified address (which reaches this machine too), `localhost`, `*.localhost`.
pub fn is_loopback(target: &Url) -> bool {
    match host(target) {
        Some(Host::Ip(IpAddr::V4(ip))) => ip.is_loopback() || ip.is_unspecified(),
        Some(Host::Ip(IpAddr::V6(ip))) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
        Some(Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        None => false,
    }
}

/// A target's host, as an address or a lower-case name without a trailing dot.
enum Host {
    Ip(IpAddr),
    Domain(String),
}

fn host(target: &Url) -> Option<Host> {
    // `Url` has already parsed and normalised the host (`127.1` is `127.0.0.1`, names
    // are lower case); an IPv6 address comes in brackets.
    let text = target.host_str()?;
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Domain(bare.trim_end_matches('.').to_ascii_lowercase()),
    })
}

/// A proxy URL: `http://` or `https://`, with a host; `host:port` alone means http.
fn parse_proxy_url(value: &str) -> Result<Url, String> {
    let value = value.trim();
    let with_scheme = if value.contains("://") { value.to_owned() } else { format!("http://{value}") };
    match Url::parse(&with_scheme) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(url) if url.scheme().starts_with("socks") => {
            Err("SOCKS proxies are not supported; give an http:// or https:// proxy".into())
        }
        _ => Err("must be a proxy URL like http://proxy.example:3128 (http or https)".into()),
    }
}

fn parse_rule(entry: &str) -> Option<Rule> {
    if entry == "*" {
        return Some(Rule::Everything);
    }
    if let Some((net, prefix)) = entry.split_once('/') {
        let net: IpAddr = net.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let bits = if net.is_ipv4() { 32 } else { 128 };
        return (prefix <= bits).then_some(Rule::Net { net, prefix });
    }
    if let Ok(ip) = entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Some(Rule::Ip { ip, port: None });
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(Rule::Ip { ip: addr.ip(), port: Some(addr.port()) });
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().ok()?)),
        None => (entry, None),
    };
    let name = name.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    valid.then_some(Rule::Domain { name, port })
}

impl Rule {
    fn matches(&self, target: &Url) -> bool {
        let port_ok = |port: &Option<u16>| port.is_none_or(|p| target.port_or_known_default() == Some(p));
        let host = host(target);
        let ip = match &host {
            Some(Host::Ip(ip)) => Some(*ip),
            _ => None,
        };
        match self {
            Rule::Everything => true,
            Rule::Domain { name, port } => {
                let Some(Host::Domain(host)) = host else { return false };
                let under = host.len() > name.len()
                    && host.ends_with(name.as_str())
                    && host.as_bytes()[host.len() - name.len() - 1] == b'.';
                (host == *name || under) && port_ok(port)
            }
            Rule::Ip { ip: rule, port } => ip == Some(*rule) && port_ok(port),
            Rule::Net { net, prefix } => ip.is_some_and(|ip| in_net(ip, *net, *prefix)),
        }
    }
}

/// `ip` lies in `net/prefix` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const PROXY: &str = "http://user:hunter2@proxy.corp.example:3128";

    fn settings(vars: &[(&str, &str)]) -> Result<ProxySettings, Vec<String>> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ProxySettings::from_lookup(|name| vars.get(name).cloned())
    }

    fn decide(settings: &ProxySettings, target: &str) -> Option<String> {
        settings.proxy_for(&Url::parse(target).unwrap()).map(|p| p.url().to_string())
    }

    #[test]
    fn loopback_targets_never_go_through_a_proxy() {
        let all = settings(&[("HTTP_PROXY", PROXY), ("HTTPS_PROXY", PROXY), ("ALL_PROXY", PROXY)]).unwrap();
        for target in [
            "http://127.0.0.1:5000/shopify/callback",
            "https://127.0.0.1/",
            "http://127.255.255.254:1/",
            "http://127.1/",
            "http://[::1]:8080/v25.0/me",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:5000/",
            "http://[::]:5000/",
            "http://localhost:5000/",
            "https://LOCALHOST./",
            "http://graph.localhost/",
            "http://a.b.localhost:1/",
        ] {
            assert_eq!(decide(&all, target), None, "{target}");
        }
    }

    #[test]
    fn real_hosts_go_through_the_proxy_of_their_scheme() {
        let s = settings(&[
            ("HTTP_PROXY", "http://plain.proxy:3128"),
            ("HTTPS_PROXY", "http://tls.proxy:3129"),
            ("ALL_PROXY", "http://all.proxy:1"),
        ])
        .unwrap();
        assert_eq!(decide(&s, "https://graph.facebook.com/v25.0/me").as_deref(), Some("http://tls.proxy:3129/"));
        assert_eq!(decide(&s, "http://example.com/").as_deref(), Some("http://plain.proxy:3128/"));
        assert_eq!(decide(&s, "https://10.1.2.3/").as_deref(), Some("http://tls.proxy:3129/"));
        // Look-alikes of loopback are real hosts.
        for target in ["https://localhost.example.com/", "https://notlocalhost/", "https://128.0.0.1/"] {
            assert!(decide(&s, target).is_some(), "{target}");
        }
        // ALL_PROXY stands in for a missing scheme proxy; no variable, no proxy.
        let only_all = settings(&[("all_proxy", "proxy.corp.example:8080")]).unwrap();
        assert_eq!(decide(&only_all, "https://x.myshopify.com/").as_deref(), Some("http://proxy.corp.example:8080/"));
        assert_eq!(decide(&only_all, "http://x.myshopify.com/").as_deref(), Some("http://proxy.corp.example:8080/"));
        let only_https = settings(&[("https_proxy", "http://p:1")]).unwrap();
        assert_eq!(decide(&only_https, "http://example.com/"), None);
        assert_eq!(decide(&settings(&[]).unwrap(), "https://graph.facebook.com/"), None);
        assert!(settings(&[]).unwrap().is_empty());
        assert_eq!(decide(&only_https, "ftp://example.com/"), None);
    }

    #[test]
    fn capitals_win_and_empty_values_are_unset() {
        let s = settings(&[("HTTPS_PROXY", "http://upper:1"), ("https_proxy", "http://lower:1")]).unwrap();
        assert_eq!(decide(&s, "https://example.com/").as_deref(), Some("http://upper:1/"));
        let s = settings(&[("HTTPS_PROXY", " "), ("https_proxy", "http://lower:1")]).unwrap();
        assert_eq!(decide(&s, "https://example.com/").as_deref(), Some("http://lower:1/"));
        let s = settings(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", ""), ("no_proxy", "example.com")]).unwrap();
        assert_eq!(decide(&s, "https://example.com/"), None);
    }

    #[test]
    fn no_proxy_entries_send_their_targets_direct() {
        let s = settings(&[
            ("HTTPS_PROXY", PROXY),
            ("HTTP_PROXY", PROXY),
            ("NO_PROXY", " internal.example , .corp.test,*.wild.test, 10.0.0.0/8,192.168.1.7, fd00::/8, [2001:db8::1], ported.test:8443, 172.16.0.1:81"),
        ])
        .unwrap();
        let table = [
            ("https://internal.example/", true),
            ("https://api.internal.example/", true),
            ("https://INTERNAL.EXAMPLE./", true),
            ("https://notinternal.example/", false),
            ("https://internal.example.com/", false),
            ("https://corp.test/", true),
            ("https://a.b.corp.test/", true),
            ("https://wild.test/", true),
            ("https://x.wild.test/", true),
            ("http://10.200.3.4/", true),
            ("http://11.0.0.1/", false),
            ("http://192.168.1.7/", true),
            ("http://192.168.1.8/", false),
            ("http://[fd12::1]/", true),
            ("http://[fe80::1]/", false),
            ("http://[2001:db8::1]:8080/", true),
            ("https://ported.test:8443/", true),
            ("https://ported.test/", false),
            ("http://172.16.0.1:81/", true),
            ("http://172.16.0.1/", false),
            ("https://graph.facebook.com/", false),
        ];
        for (target, direct) in table {
            assert_eq!(decide(&s, target).is_none(), direct, "{target}");
        }
        let everything = settings(&[("HTTPS_PROXY", PROXY), ("no_proxy", "*")]).unwrap();
        assert_eq!(decide(&everything, "https://graph.facebook.com/"), None);
    }

    #[test]
    fn bad_values_are_reported_by_name_without_the_value() {
        let problems = settings(&[
            ("HTTPS_PROXY", "ftp://user:hunter2@proxy:21"),
            ("http_proxy", "socks5://user:hunter2@proxy:1080"),
            ("ALL_PROXY", "http://"),
            ("NO_PROXY", "ok.example,10.0.0.0/33,bad host,fd00::/200,x:99999"),
        ])
        .unwrap_err();
        assert_eq!(
            problems,
            vec![
                "ALL_PROXY: must be a proxy URL like http://proxy.example:3128 (http or https)".to_owned(),
                "http_proxy: SOCKS proxies are not supported; give an http:// or https:// proxy".to_owned(),
                "HTTPS_PROXY: must be a proxy URL like http://proxy.example:3128 (http or https)".to_owned(),
                "NO_PROXY: entry 2 is not a host name, an IP address, a CIDR range or *".to_owned(),
                "NO_PROXY: entry 3 is not a host name, an IP address, a CIDR range or *".to_owned(),
                "NO_PROXY: entry 4 is not a host name, an IP address, a CIDR range or *".to_owned(),
                "NO_PROXY: entry 5 is not a host name, an IP address, a CIDR range or *".to_owned(),
            ]
        );
        assert!(problems.iter().all(|p| !p.contains("hunter2")));
    }

    #[test]
    fn proxy_credentials_never_show_in_debug_or_display() {
        let s = settings(&[("HTTPS_PROXY", PROXY), ("HTTP_PROXY", "http://:onlypass@p:1")]).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("user") && !debug.contains("onlypass"), "{debug}");
        assert!(debug.contains("http://***@proxy.corp.example:3128"), "{debug}");
        let url = s.proxy_for(&Url::parse("https://example.com/").unwrap()).unwrap();
        assert_eq!(url.to_string(), "http://***@proxy.corp.example:3128");
        // The client still gets them.
        assert_eq!(url.url().password(), Some("hunter2"));
    }
}
