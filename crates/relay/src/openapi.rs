//! The frame of the OpenAPI document served at `GET /v1/openapi.json`; its paths and schemas are generated from
//! the handlers' `#[utoipa::path]` and magpie-api's types by [`crate::api::api`].

use magpie_api::{ClientFrame, RelayFrame};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "magpie-relay",
        description = "Routes opaque end-to-end encrypted envelopes; runs the CA and certificate directory. \
            The push socket's frames are the schemas ClientFrame and RelayFrame."
    ),
    components(schemas(ClientFrame, RelayFrame)),
    modifiers(&Bearer)
)]
struct Document;

/// `Authorization: Bearer <token>` from `POST /v1/login`.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document before the routes add their paths and schemas.
pub fn base() -> utoipa::openapi::OpenApi {
    Document::openapi()
}
