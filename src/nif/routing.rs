//! Routing terms: decodes what a request names (`main`, a context number, `auto`,
//! `{pool, Name}`) into a target through `actors::routing`, and watches each
//! process routing remembers, so its binding and placements go when it exits.
//! Also the NIFs behind bind_context, pools and the modules routed to main.

use crate::actors::job::Target;
use crate::actors::router::{self, RouterMsg, SubmitError};
use crate::actors::routing::{self, Binding, Want};
use crate::atoms;
use rustler::{Atom, Encoder, Env, LocalPid, Monitor, NifResult, Resource, ResourceArc, Term};
use std::sync::OnceLock;

rustler::atoms! { auto, pool, main, undefined, py_context }

/// The one resource every routed process is monitored with.
pub struct Watch;

#[rustler::resource_impl]
impl Resource for Watch {
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        routing::forget(pid);
    }
}

fn watch(env: Env<'_>, pid: LocalPid) {
    static WATCH: OnceLock<ResourceArc<Watch>> = OnceLock::new();
    let w = WATCH.get_or_init(|| ResourceArc::new(Watch));
    if env.monitor(w, &pid).is_none() {
        // Not alive (cannot happen for the calling process): nothing to keep.
        routing::forget(pid);
    }
}

fn exactly(t: Term<'_>) -> Option<Target> {
    if t.decode::<Atom>().ok() == Some(main()) {
        Some(Target::Main)
    } else {
        t.decode::<u32>().ok().map(Target::Context)
    }
}

/// The pool a `{pool, Name}` term names.
fn pool_name(t: Term<'_>) -> Option<String> {
    match t.decode::<(Atom, Atom)>() {
        Ok((tag, name)) if tag == pool() => name.to_term(t.get_env()).atom_to_string().ok(),
        _ => None,
    }
}

/// Where a request of the calling process goes. `module`: the module a `call`
/// names (for modules learned to need the main interpreter). `Ok(Err(_))` for a
/// term that names no target (`BadTarget`) or one that names nothing running.
pub fn resolve(env: Env<'_>, t: Term<'_>, module: Option<&str>) -> NifResult<Result<Target, SubmitError>> {
    let want_pool;
    let want = if let Some(target) = exactly(t) {
        return Ok(Ok(target));
    } else if t.decode::<Atom>().ok() == Some(auto()) {
        Want::Auto { module }
    } else if let Some(name) = pool_name(t) {
        want_pool = name;
        Want::Pool(&want_pool)
    } else {
        return Ok(Err(SubmitError::BadTarget));
    };
    let pid = env.pid();
    Ok(router::route(pid, want).map(|r| {
        if r.watch {
            watch(env, pid);
        }
        r.target
    }))
}

fn context_term<'a>(env: Env<'a>, t: Target) -> Term<'a> {
    match t {
        Target::Main => (py_context(), main()).encode(env),
        Target::Context(n) => (py_context(), n).encode(env),
    }
}

/// `route(auto | {pool, Name}) -> {py_context, N | main} | {error, Reason}`:
/// the context the calling process's requests go to (placing it if new).
#[rustler::nif]
fn route<'a>(env: Env<'a>, want: Term<'a>) -> NifResult<Term<'a>> {
    Ok(match resolve(env, want, None)? {
        Ok(t) => context_term(env, t),
        Err(why) => (atoms::error(), why.reason(env)).encode(env),
    })
}

/// `bind(main | N | {pool, Name} | undefined) -> ok`: binds the calling process
/// (`undefined`: unbinds it).
#[rustler::nif]
fn bind<'a>(env: Env<'a>, to: Term<'a>) -> NifResult<Atom> {
    let binding = if let Some(t) = exactly(to) {
        Some(Binding::Target(t))
    } else if let Some(p) = pool_name(to) {
        Some(Binding::Pool(p))
    } else if to.decode::<Atom>().ok() == Some(undefined()) {
        None
    } else {
        return Err(rustler::Error::BadArg);
    };
    let pid = env.pid();
    if routing::bind(pid, binding) {
        watch(env, pid);
    }
    Ok(atoms::ok())
}

/// `binding() -> undefined | main | N | {pool, Name}`.
#[rustler::nif]
fn binding(env: Env<'_>) -> NifResult<Term<'_>> {
    Ok(match routing::binding(env.pid()) {
        None => undefined().encode(env),
        Some(Binding::Target(Target::Main)) => main().encode(env),
        Some(Binding::Target(Target::Context(n))) => n.encode(env),
        Some(Binding::Pool(p)) => (pool(), Atom::from_str(env, &p)?).encode(env),
    })
}

/// `spread(K) -> [main | N]`: targets for a batch of K calls (`py:parallel`).
#[rustler::nif]
fn spread(env: Env<'_>, k: usize) -> Vec<Term<'_>> {
    let encode = |t| match t {
        Target::Main => main().encode(env),
        Target::Context(n) => n.encode(env),
    };
    router::spread(k).into_iter().map(encode).collect()
}

/// `routes() -> #{default => [N], pools => #{Name => [N]}, main_modules =>
/// [Module], processes => Count}`.
#[rustler::nif]
fn routes(env: Env<'_>) -> NifResult<Term<'_>> {
    let router::Groups { default, pools, main_modules: mains } = router::groups();
    let mut pool_map = Term::map_new(env);
    for (name, ids) in pools {
        pool_map = pool_map.map_put(Atom::from_str(env, &name)?, ids)?;
    }
    Term::map_new(env)
        .map_put(Atom::from_str(env, "default")?, default)?
        .map_put(pool(), pool_map)?
        .map_put(Atom::from_str(env, "main_modules")?, mains)?
        .map_put(Atom::from_str(env, "processes")?, routing::tracked())
}

/// `route_to_main(Module) -> ok`: unbound calls naming Module (its top-level
/// package) run on the main interpreter from now on. The router logs it once.
#[rustler::nif]
fn route_to_main(module: String) -> Atom {
    crate::actors::runtime::get().spawn(async move {
        if let Ok(r) = router::get().await {
            let _ = r.cast(RouterMsg::RouteToMain { module });
        }
    });
    atoms::ok()
}
