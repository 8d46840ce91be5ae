//! The route table: every path the server answers, the methods it serves there, whether it is
//! open without an API key (probes) and whether its successes are logged quietly (probes and
//! scrapes). `http::app` registers exactly these, `auth` and `observe` read them, and a method a
//! route does not serve gets a 405 listing the ones it does (RFC 9110, section 15.5.6).

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path as actix matches it (`{name}` is a segment).
    pub path: &'static str,
    /// The methods served, as the `Allow` header lists them.
    pub methods: &'static [&'static str],
    /// Answered without an API key, so that platforms can probe it.
    pub open: bool,
    /// Successes logged at debug, so that probes and scrapes do not drown the scoring lines.
    pub quiet: bool,
}

const fn probe(path: &'static str) -> Route {
    Route { path, methods: &["GET"], open: true, quiet: true }
}

pub const ROOT: Route = probe("/");
pub const HEALTH: Route = probe("/health");
pub const READY: Route = probe("/ready");
pub const METRICS: Route = Route { path: "/metrics", methods: &["GET"], open: false, quiet: true };
pub const SWAGGER: Route = Route { path: "/swagger.json", methods: &["GET"], open: false, quiet: false };
pub const SCORE: Route = Route { path: "/score", methods: &["POST", "OPTIONS"], open: false, quiet: false };
// The demo page is open (a browser cannot send a key for it); the page sends the key to /score.
pub const UI: Route = page("/ui");
pub const UI_SCRIPT: Route = page("/ui/app.js");
pub const UI_STYLE: Route = page("/ui/app.css");

const fn page(path: &'static str) -> Route {
    Route { path, methods: &["GET"], open: true, quiet: false }
}

pub const V2_SERVER: Route = Route { path: "/v2", methods: &["GET"], open: false, quiet: false };
pub const V2_LIVE: Route = probe("/v2/health/live");
pub const V2_READY: Route = probe("/v2/health/ready");
pub const V2_MODEL: Route = model_get("/v2/models/{name}");
pub const V2_MODEL_VERSION: Route = model_get("/v2/models/{name}/versions/{version}");
pub const V2_MODEL_READY: Route = model_get("/v2/models/{name}/ready");
pub const V2_MODEL_VERSION_READY: Route = model_get("/v2/models/{name}/versions/{version}/ready");
pub const V2_INFER: Route = model_post("/v2/models/{name}/infer");
pub const V2_INFER_VERSION: Route = model_post("/v2/models/{name}/versions/{version}/infer");

const fn model_get(path: &'static str) -> Route {
    Route { path, methods: &["GET"], open: false, quiet: false }
}

const fn model_post(path: &'static str) -> Route {
    Route { path, methods: &["POST"], open: false, quiet: false }
}

/// Every route, in the order they are registered.
pub const ALL: &[Route] = &[
    ROOT,
    HEALTH,
    READY,
    METRICS,
    SWAGGER,
    SCORE,
    UI,
    UI_SCRIPT,
    UI_STYLE,
    V2_SERVER,
    V2_LIVE,
    V2_READY,
    V2_MODEL,
    V2_MODEL_VERSION,
    V2_MODEL_READY,
    V2_MODEL_VERSION_READY,
    V2_INFER,
    V2_INFER_VERSION,
];

impl Route {
    /// The `Allow` header's value.
    pub fn allow(&self) -> String {
        self.methods.join(", ")
    }
}

/// Whether a request path is open without a key. Open routes are literal paths.
pub fn is_open(path: &str) -> bool {
    ALL.iter().any(|route| route.open && route.path == path)
}

/// Whether successes on a matched route pattern are logged quietly.
pub fn is_quiet(pattern: &str) -> bool {
    ALL.iter().any(|route| route.quiet && route.path == pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_probes_and_the_demo_page_are_open() {
        let open: Vec<_> = ALL.iter().filter(|r| r.open).map(|r| r.path).collect();
        let page = ["/ui", "/ui/app.js", "/ui/app.css"];
        assert_eq!(open, ["/", "/health", "/ready", page[0], page[1], page[2], "/v2/health/live", "/v2/health/ready"]);
        assert!(!is_open("/score") && !is_open("/metrics") && !is_open("/health/"));
    }

    #[test]
    fn paths_are_unique() {
        let mut paths: Vec<_> = ALL.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ALL.len());
    }
}
