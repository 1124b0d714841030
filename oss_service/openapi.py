"""The OpenAPI document served at ``/openapi.json``; the update body is the published wire schema."""

from __future__ import annotations

import copy
from typing import Any

from .wire import wire_schema


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(version: str) -> dict[str, Any]:
    update = copy.deepcopy(wire_schema())
    update.pop("$schema", None)
    lookup_params = [
        {"name": "merchant", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "order", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "email", "in": "query", "schema": {"type": "string"},
         "description": "the shopper's email; give email or zip"},
        {"name": "zip", "in": "query", "schema": {"type": "string"}},
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "cartstatus Order Status System", "version": version,
                 "description": "Stores push order status updates; shoppers look their order up."},
        "components": {
            "securitySchemes": {"storeToken": {"type": "http", "scheme": "bearer",
                                               "description": "the store's token from `cartstatus-oss accounts`"}},
            "schemas": {
                "StatusUpdate": update,
                "Accepted": {"type": "object", "required": ["result", "idempotency_key"], "properties": {
                    "result": {"const": "OK"}, "idempotency_key": {"type": "string"},
                    "order_number": {"type": "string"}, "status": {"type": "string"}}},
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"},
                    "field": {"type": "string"}, "errors": {"type": "array"},
                    "expires": {"type": "string", "format": "date"}}},
                "Order": {"type": "object", "properties": {
                    "merchant": {"type": "string"}, "order_number": {"type": "string"},
                    "status": {"type": "string"}, "status_at": {"type": "string", "format": "date-time"},
                    "history": {"type": "array"}, "tracking": {"type": "array"}}},
            },
        },
        "paths": {
            "/api/v1/updates": {"post": {
                "summary": "Store one status update",
                "security": [{"storeToken": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/StatusUpdate"}}}},
                "responses": {
                    "200": {"description": "stored, or a repeat of a stored update (header Idempotent-Replayed: "
                                           "true)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "401": _error("unknown or revoked token"),
                    "402": _error("the subscription lapsed; the message and `expires` give the end date"),
                    "403": _error("the body names another merchant than the token's"),
                    "409": _error("the idempotency key was used with a different body"),
                    "413": _error("the body is too large"),
                    "422": _error("the body does not match the schema; `field` names the first problem"),
                    "429": _error("too many requests; see Retry-After"),
                }}},
            "/api/v1/lookup": {"get": {
                "summary": "A shopper's order lookup", "parameters": lookup_params,
                "responses": {"200": {"description": "the order",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Order"}}}},
                              "404": _error("no order matches (the same answer for every reason)"),
                              "422": _error("a parameter is missing"),
                              "429": _error("too many lookups; see Retry-After")}}},
            "/api/v1/account": {"get": {"summary": "The token's account", "security": [{"storeToken": []}],
                                        "responses": {"200": {"description": "merchant and subscription"},
                                                      "401": _error("unknown or revoked token")}}},
            "/api/v1/orders/{order_number}": {"get": {
                "summary": "The store's own order", "security": [{"storeToken": []}],
                "parameters": [{"name": "order_number", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the order", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Order"}}}},
                    "401": _error("unknown or revoked token"), "404": _error("not this store's order")}}},
            "/status/{merchant}": {
                "get": {"summary": "The lookup form (HTML)",
                        "parameters": [{"name": "merchant", "in": "path", "required": True,
                                        "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "HTML form"}}},
                "post": {"summary": "The order's status page (HTML)",
                         "responses": {"200": {"description": "HTML"}, "404": {"description": "not found"}}}},
            "/status/{merchant}/snippet": {"get": {"summary": "HTML form for the merchant's own site",
                                                   "responses": {"200": {"description": "text/plain"}}}},
            "/healthz": {"get": {"summary": "Liveness and database check",
                                 "responses": {"200": {"description": "ok"}, "503": {"description": "down"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
    }
