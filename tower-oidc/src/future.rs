//! The response future shared by [`OidcService`](crate::OidcService) and
//! [`RequireRule`](crate::RequireRule).

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Request, Response, header};
use pin_project_lite::pin_project;
use tower::Service;

/// What the authorization step decided.
pub(crate) enum Authorized {
    /// Call the inner service with these parts, then add these headers to its response.
    Forward {
        parts: Parts,
        response_headers: HeaderMap,
    },
    /// Answer directly.
    Respond(Response<Bytes>),
}

/// The asynchronous part of authorization (engine check, token validation).
pub(crate) type AuthFuture = Pin<Box<dyn Future<Output = Authorized> + Send>>;

pin_project! {
    /// Response future of [`OidcService`](crate::OidcService) and
    /// [`RequireRule`](crate::RequireRule).
    ///
    /// Authorizes the request, then calls the inner service (which it holds,
    /// ready) or answers directly.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Authorizing {
            auth: AuthFuture,
            service: Option<S>,
            body: Option<ReqBody>,
        },
        Calling {
            #[pin]
            future: S::Future,
            response_headers: HeaderMap,
        },
        Responding {
            response: Option<Response<Bytes>>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Authorize asynchronously, then call `service`.
    pub(crate) fn authorizing(auth: AuthFuture, service: S, body: ReqBody) -> Self {
        Self {
            state: State::Authorizing {
                auth,
                service: Some(service),
                body: Some(body),
            },
        }
    }

    /// Already authorized: call `service` now.
    pub(crate) fn calling(mut service: S, request: Request<ReqBody>) -> Self {
        Self {
            state: State::Calling {
                future: service.call(request),
                response_headers: HeaderMap::new(),
            },
        }
    }

    /// Already decided: answer with `response`.
    pub(crate) fn responding(response: Response<Bytes>) -> Self {
        Self {
            state: State::Responding {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authorizing {
                    auth,
                    service,
                    body,
                } => match ready!(auth.as_mut().poll(cx)) {
                    Authorized::Forward {
                        parts,
                        response_headers,
                    } => {
                        let (Some(mut service), Some(body)) = (service.take(), body.take()) else {
                            unreachable!("ResponseFuture polled after completion")
                        };
                        let future = service.call(Request::from_parts(parts, body));
                        this.state.set(State::Calling {
                            future,
                            response_headers,
                        });
                    }
                    Authorized::Respond(response) => {
                        return Poll::Ready(Ok(response.map(ResBody::from)));
                    }
                },
                StateProj::Calling {
                    future,
                    response_headers,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    append_headers(response.headers_mut(), mem::take(response_headers));
                    return Poll::Ready(Ok(response));
                }
                StateProj::Responding { response } => {
                    let Some(response) = response.take() else {
                        unreachable!("ResponseFuture polled after completion")
                    };
                    return Poll::Ready(Ok(response.map(ResBody::from)));
                }
            }
        }
    }
}

/// Appends the engine's response headers (a refreshed `Set-Cookie`, ...) to
/// the inner service's response, keeping the service's own cookies.
fn append_headers(target: &mut HeaderMap, extra: HeaderMap) {
    if extra.is_empty() {
        return;
    }
    let mut current = None;
    for (name, value) in extra {
        match name {
            Some(name) => {
                if name == header::SET_COOKIE {
                    target.append(&name, value);
                } else {
                    target.insert(&name, value);
                }
                current = Some(name);
            }
            None => {
                if let Some(name) = &current {
                    target.append(name, value);
                }
            }
        }
    }
}
