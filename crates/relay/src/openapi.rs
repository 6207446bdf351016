//! The OpenAPI 3.1 description served at `GET /v1/openapi.json`, written by hand next to the routes; a
//! test checks it names exactly the routes of [`crate::api::routes`].

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The document.
pub fn document() -> Value {
    let bearer = json!([{"bearer": []}]);
    let envelope = json!({"$ref": "#/components/schemas/Envelope"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "magpie-relay",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Routes opaque end-to-end encrypted envelopes; runs the CA and certificate directory."
        },
        "paths": {
            "/v1/health": {"get": {
                "summary": "Liveness, version and CA fingerprint",
                "responses": {"200": ok_json("ok", json!({"type": "object"}))}
            }},
            "/v1/ca": {"get": {
                "summary": "The CA root certificate (pin it)",
                "responses": {"200": {"description": "PEM",
                    "content": {"application/x-pem-file": {"schema": {"type": "string"}}}}}
            }},
            "/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": ok_json("OpenAPI", json!({"type": "object"}))}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics",
                "description": "Served to the relay's own machine when no proxy is configured, else only with the \
                    bearer token of --metrics-token.",
                "responses": {"200": {"description": "text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "403": error_response("not this machine, and no (or a wrong) metrics token")}
            }},
            "/v1/register": {"post": {
                "summary": "Register a name with a CSR (CN = username); the CA issues a certificate",
                "requestBody": json_body(json!({"type": "object", "additionalProperties": false,
                    "required": ["csr"], "properties": {"csr": {"type": "string", "description": "PKCS#10, PEM"}}})),
                "responses": {
                    "201": ok_json("issued", json!({"type": "object", "properties": {
                        "username": {"type": "string"}, "certificate": {"type": "string"}, "ca": {"type": "string"}}})),
                    "400": error_response("bad JSON or bad CSR (self-signature, key, name)"),
                    "409": error_response("name taken"),
                    "413": error_response("body too large"),
                    "429": error_response("too many registrations from this client address")
                }
            }},
            "/v1/login/challenge": {"post": {
                "summary": "Get a single-use nonce to sign",
                "requestBody": json_body(json!({"type": "object", "additionalProperties": false,
                    "required": ["username"], "properties": {"username": {"type": "string"}}})),
                "responses": {
                    "200": ok_json("nonce", json!({"type": "object", "properties": {
                        "nonce": {"type": "string", "contentEncoding": "base64"}, "expires_at": {"type": "integer"}}})),
                    "400": error_response("bad input"),
                    "404": error_response("no such user"),
                    "429": error_response("too many login attempts from this client address")
                }
            }},
            "/v1/login": {"post": {
                "summary": "Exchange a signed nonce for a bearer token",
                "description": "signature = RSA-PSS-SHA256 (MGF1-SHA256, salt 32) over the length-prefixed fields \
                    \"magpie v1 login\", CA certificate SHA-256, username, nonce, each as u32be(length) || bytes.",
                "requestBody": json_body(json!({"type": "object", "additionalProperties": false,
                    "required": ["username", "nonce", "signature"], "properties": {
                        "username": {"type": "string"}, "nonce": {"type": "string"}, "signature": {"type": "string"}}})),
                "responses": {
                    "200": ok_json("token", json!({"type": "object", "properties": {
                        "token": {"type": "string"}, "expires_at": {"type": "integer"}}})),
                    "400": error_response("bad input"),
                    "401": error_response("login failed"),
                    "429": error_response("too many login attempts from this client address")
                }
            }},
            "/v1/directory/{username}": {"get": {
                "summary": "A user's certificate chain, leaf first (logged-in users; rate-limited per user)",
                "security": bearer,
                "parameters": [{"name": "username", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": ok_json("chain", json!({"type": "object", "properties": {
                        "username": {"type": "string"}, "chain": {"type": "array", "items": {"type": "string"}}}})),
                    "400": error_response("invalid username"),
                    "401": error_response("missing, unknown or expired token"),
                    "404": error_response("no such user"),
                    "429": error_response("too many lookups by this user (--lookups-per-minute)")
                }
            }},
            "/v1/envelopes": {
                "post": {
                    "summary": "Send an envelope; 202 once durably stored; idempotent on id",
                    "security": bearer,
                    "requestBody": json_body(json!({"type": "object", "additionalProperties": false,
                        "required": ["id", "to", "kind", "body"], "properties": {
                            "id": {"type": "string", "format": "uuid"},
                            "from": {"type": "string", "description": "optional; must be the caller"},
                            "to": {"type": "string"},
                            "kind": {"$ref": "#/components/schemas/Kind"},
                            "body": {"type": "string", "contentEncoding": "base64"}}})),
                    "responses": {
                        "202": ok_json("stored", json!({"type": "object", "properties": {
                            "id": {"type": "string"}, "cursor": {"type": "integer"}, "created": {"type": "boolean"}}})),
                        "400": error_response("bad input"),
                        "401": error_response("no, unknown or expired token"),
                        "403": error_response("from is not the caller"),
                        "404": error_response("no such recipient"),
                        "409": error_response("id used by another sender"),
                        "413": error_response("envelope too large"),
                        "429": error_response("sending too fast, or over the bytes an hour (--send-kb-per-hour)"),
                        "507": error_response("the recipient's mailbox is full (mailbox_full): try again once they read")
                    }
                },
                "get": {
                    "summary": "The caller's pending envelopes after a cursor, oldest first",
                    "description": "A page carries at most --fetch-budget-kb of bodies (at least one envelope, \
                        whatever its size), whatever `limit` says: page on from `cursor` until a page is empty.",
                    "security": bearer,
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "integer", "default": 0}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100, "maximum": 1000}}
                    ],
                    "responses": {
                        "200": ok_json("page", json!({"type": "object", "properties": {
                            "envelopes": {"type": "array", "items": envelope}, "cursor": {"type": "integer"}}})),
                        "400": error_response("bad query"),
                        "401": error_response("no, unknown or expired token"),
                        "429": error_response("too many fetches by this user (--fetches-per-minute)")
                    }
                }
            },
            "/v1/envelopes/ack": {"post": {
                "summary": "Delete delivered envelopes from the caller's mailbox",
                "security": bearer,
                "requestBody": json_body(json!({"type": "object", "additionalProperties": false,
                    "required": ["ids"], "properties": {"ids": {"type": "array", "maxItems": 1000,
                        "items": {"type": "string", "format": "uuid"}}}})),
                "responses": {
                    "200": ok_json("deleted", json!({"type": "object", "properties": {"acked": {"type": "integer"}}})),
                    "400": error_response("bad input"),
                    "401": error_response("no, unknown or expired token")
                }
            }},
            "/v1/push": {"get": {
                "summary": "WebSocket push: one text frame {type: envelope, cursor, envelope} per new envelope",
                "description": "The client may send text frames {type: send, id, to, kind, body}; each is answered, once \
                    durable, by {type: accepted, id, cursor, created} or {type: error, id, code, message}. A frame \
                    {type: ack, ids} deletes those envelopes from the caller's mailbox (as POST /v1/envelopes/ack) and \
                    is answered by {type: acked, acked} or {type: error, id: null, code, message}. Answers come in the \
                    order of the frames.",
                "security": bearer,
                "responses": {
                    "101": {"description": "switching to WebSocket"},
                    "401": error_response("no, unknown or expired token")
                }
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}},
                "Kind": {"type": "string", "enum": ["chat_request", "chat_accept", "chat_decline",
                    "key_transfer", "key_confirm", "message"]},
                "Envelope": {"type": "object", "required": ["id", "from", "to", "kind", "body"], "properties": {
                    "id": {"type": "string", "format": "uuid"}, "from": {"type": "string"}, "to": {"type": "string"},
                    "kind": {"$ref": "#/components/schemas/Kind"},
                    "body": {"type": "string", "contentEncoding": "base64"}}}
            }
        }
    })
}
