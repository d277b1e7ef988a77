//! Routes and permissions (SPEC §3.3–3.4): which route a path falls under, and whether a key with
//! given permissions, role and method may use it. Pure; the proxy calls it in `request_filter`.

use http::Method;

use crate::record::{Environment, Role};

/// One configured route. `path` has no trailing slash (`/` is the empty string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub methods: Option<Vec<Method>>,
    pub permission: Option<String>,
    pub public: bool,
    /// Where a public route goes when environments are not selected by Host.
    pub environment: Environment,
}

/// All routes, longest path first so the first match is the longest prefix.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<Route>);

/// Why a request may not use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Method,
    Role,
    Permission,
}

impl Routes {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Routes(routes)
    }

    /// The route with the longest path that matches `path` on whole segments.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.0
            .iter()
            .find(|r| path.strip_prefix(r.path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// Checks role and route rules for a key. `has` answers whether the key holds a permission.
pub fn authorize(route: Option<&Route>, method: &Method, role: Role, has: impl Fn(&str) -> bool) -> Result<(), Denied> {
    if !role.allows_method(method) {
        return Err(Denied::Role);
    }
    let Some(route) = route else { return Ok(()) };
    if route.methods.as_ref().is_some_and(|m| !m.contains(method)) {
        return Err(Denied::Method);
    }
    match &route.permission {
        Some(p) if !has(p) => Err(Denied::Permission),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route {
            path: path.trim_end_matches('/').into(),
            methods: None,
            permission: None,
            public: false,
            environment: Environment::Production,
        }
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let routes = Routes::new(vec![route("/customers"), route("/customers/vip"), route("/")]);
        assert_eq!(routes.find("/customers").unwrap().path, "/customers");
        assert_eq!(routes.find("/customers/7").unwrap().path, "/customers");
        assert_eq!(routes.find("/customers/vip/1").unwrap().path, "/customers/vip");
        assert_eq!(routes.find("/customersX").unwrap().path, "", "falls to the root route, not /customers");
        let no_root = Routes::new(vec![route("/customers")]);
        assert!(no_root.find("/customersX").is_none());
        assert!(no_root.find("/").is_none());
    }

    #[test]
    fn permissions_methods_and_roles() {
        let mut r = route("/licenses");
        r.permission = Some("licenses:manage".into());
        r.methods = Some(vec![Method::GET, Method::POST]);
        let granted = |p: &str| p == "licenses:manage";
        let none = |_: &str| false;
        assert_eq!(authorize(Some(&r), &Method::GET, Role::Admin, granted), Ok(()));
        assert_eq!(authorize(Some(&r), &Method::GET, Role::Admin, none), Err(Denied::Permission));
        assert_eq!(authorize(Some(&r), &Method::DELETE, Role::Admin, granted), Err(Denied::Method));
        assert_eq!(authorize(Some(&r), &Method::POST, Role::Readonly, granted), Err(Denied::Role));
        assert_eq!(authorize(None, &Method::DELETE, Role::Admin, none), Ok(()));
        assert_eq!(authorize(None, &Method::DELETE, Role::Readonly, none), Err(Denied::Role));
    }
}
