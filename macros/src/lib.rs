//! `#[aioloop::main]` and `#[aioloop::test]`: an `async fn` run to completion on a fresh
//! runtime (or a `LocalLoop`), as `asyncio.run(main())` does.
//!
//! Use them through the `aioloop` crate (feature `macros`, on by default), never directly:
//! the expansion names `::aioloop::__private`, which is where the work happens. The macros
//! only check the function's shape and parse the options, so that every misuse is a
//! compile error pointing at the offending token.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, ReturnType, Token};

/// Runs `async fn main` on a new aioloop runtime: asyncio's `asyncio.run(main())`.
///
/// Options: `workers = N` (worker threads; default one per core), `local` (a
/// `LocalLoop` on the main thread instead: `!Send` futures allowed), `debug` (asyncio's
/// debug mode). The function must be `async` and take no arguments; it may return a value
/// (a `Result`, for `?`), which `main` returns.
///
/// ```ignore
/// #[aioloop::main(workers = 2, debug)]
/// async fn main() {
///     let t = aioloop::create_task(async { 1 });
///     assert_eq!(t.await.unwrap(), 1);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// A `#[test]` whose body is an `async fn`, run on a new aioloop runtime (the same options
/// as [`macro@main`]) plus `timeout = "5s"`: past it the body is dropped and the test fails
/// with "test timed out after 5s" instead of hanging.
///
/// ```ignore
/// #[aioloop::test(timeout = "5s")]
/// async fn adds() {
///     assert_eq!(aioloop::create_task(async { 2 }).await.unwrap(), 2);
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "#[aioloop::main]",
            Kind::Test => "#[aioloop::test]",
        }
    }
}

#[derive(Default)]
struct Options {
    workers: Option<Expr>,
    local: bool,
    debug: bool,
    timeout_nanos: Option<u64>,
}

fn expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let func: ItemFn = match syn::parse2(item) {
        Ok(f) => f,
        Err(e) => return on_error(kind, e),
    };
    match check_and_parse(kind, args, &func) {
        Ok(opts) => generate(kind, func, opts),
        Err(e) => on_error(kind, e),
    }
}

/// Our error alone: the function as written (an `async fn main`, a test with arguments)
/// would only add rustc's own, less helpful errors. A `main` stands in so that the crate
/// does not also lack one.
fn on_error(kind: Kind, e: syn::Error) -> TokenStream2 {
    let err = e.to_compile_error();
    match kind {
        Kind::Main => quote! { #err fn main() {} },
        Kind::Test => err,
    }
}

fn check_and_parse(kind: Kind, args: TokenStream2, func: &ItemFn) -> syn::Result<Options> {
    let attr = kind.attr();
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            format!("{attr} requires an `async fn`: the `async` keyword is missing"),
        ));
    }
    if !func.sig.inputs.is_empty() {
        let what = if kind == Kind::Main {
            "`main` takes no arguments"
        } else {
            "a test function takes no arguments"
        };
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            format!("{attr}: {what}"),
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            func.sig.generics.span(),
            format!("{attr}: the function cannot be generic"),
        ));
    }
    if kind == Kind::Main && func.sig.ident != "main" {
        return Err(syn::Error::new(
            func.sig.ident.span(),
            "#[aioloop::main] goes on `async fn main`",
        ));
    }
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut opts = Options::default();
    for meta in metas {
        let name = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match (name.as_str(), &meta) {
            ("local", Meta::Path(_)) => opts.local = true,
            ("debug", Meta::Path(_)) => opts.debug = true,
            ("workers", Meta::NameValue(nv)) => opts.workers = Some(nv.value.clone()),
            ("timeout", Meta::NameValue(nv)) if kind == Kind::Test => {
                opts.timeout_nanos = Some(parse_duration(&nv.value)?);
            }
            _ => {
                let allowed = if kind == Kind::Test {
                    "`workers = N`, `local`, `debug`, `timeout = \"5s\"`"
                } else {
                    "`workers = N`, `local`, `debug`"
                };
                return Err(syn::Error::new(
                    meta.span(),
                    format!("{attr}: unknown option; expected {allowed}"),
                ));
            }
        }
    }
    if opts.local {
        if let Some(w) = &opts.workers {
            return Err(syn::Error::new(
                w.span(),
                format!(
                    "{attr}: `workers` and `local` exclude each other (a LocalLoop is one thread)"
                ),
            ));
        }
    }
    Ok(opts)
}

/// `"250ms"`, `"5s"`, `"1.5s"`, `"2m"` → nanoseconds.
fn parse_duration(value: &Expr) -> syn::Result<u64> {
    let bad = |span: Span| {
        syn::Error::new(
            span,
            "timeout: expected a string such as \"5s\", \"250ms\", \"1.5s\" or \"2m\"",
        )
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    }) = value
    else {
        return Err(bad(value.span()));
    };
    let text = s.value();
    let text = text.trim();
    let (num, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, ""), |i| text.split_at(i));
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return Err(bad(s.span())),
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && n * scale < u64::MAX as f64 => Ok((n * scale) as u64),
        _ => Err(bad(s.span())),
    }
}

fn generate(kind: Kind, func: ItemFn, opts: Options) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    sig.asyncness = None;
    let ret = match &sig.output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) => quote! { #ty },
    };
    let span = block.span();
    let workers = match &opts.workers {
        Some(w) => quote_spanned! { w.span()=> ::core::option::Option::Some(#w) },
        None => quote! { ::core::option::Option::None },
    };
    let local = opts.local;
    let debug = opts.debug;
    let timeout = match opts.timeout_nanos {
        Some(n) => quote! { ::core::option::Option::Some(::core::time::Duration::from_nanos(#n)) },
        None => quote! { ::core::option::Option::None },
    };
    let test_attr = if kind == Kind::Test {
        quote! { #[::core::prelude::v1::test] }
    } else {
        quote! {}
    };
    let body = quote_spanned! { span=>
        let options = ::aioloop::__private::MacroOptions {
            workers: #workers,
            local: #local,
            debug: #debug,
            timeout: #timeout,
        };
        ::aioloop::__private::run::<_, #ret>(options, async move #block)
    };
    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}
