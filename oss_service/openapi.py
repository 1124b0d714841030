"""The OpenAPI document served at ``/openapi.json``; the update body is the published wire schema."""

from __future__ import annotations

import copy
from typing import Any

from .wire import LOOKUP_MAX_LENGTH, lookup_parameters, wire_schema


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def openapi_document(version: str) -> dict[str, Any]:
    update = copy.deepcopy(wire_schema())
    update.pop("$schema", None)
    lookup_params = lookup_parameters()
    merchant_param = {"name": "merchant", "in": "path", "required": True, "schema": lookup_params[0]["schema"]}
    order_param = {"name": "order_number", "in": "path", "required": True, "schema": lookup_params[1]["schema"]}
    form = {"type": "object", "properties": {
        "order": {"type": "string", "maxLength": LOOKUP_MAX_LENGTH["order"]},
        "email": {"type": "string", "maxLength": LOOKUP_MAX_LENGTH["email"]},
        "zip": {"type": "string", "maxLength": LOOKUP_MAX_LENGTH["zip"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "cartstatus Order Status System", "version": version,
                 "description": "Stores push order status updates; shoppers look their order up."},
        "components": {
            "securitySchemes": {"storeToken": {"type": "http", "scheme": "bearer",
                                               "description": "the store's token from `cartstatus-oss accounts`"}},
            "schemas": {
                "StatusUpdate": update,
                "Accepted": {"type": "object", "required": ["result", "idempotency_key", "status_url"],
                             "properties": {
                    "result": {"const": "OK"}, "idempotency_key": {"type": "string"},
                    "order_number": {"type": "string"}, "status": {"type": "string"},
                    "status_url": {"type": "string", "format": "uri",
                                   "description": "the order's page for the shopper, a signed link that opens it "
                                                  "without typing (GET /status/{merchant} with order and key)"}}},
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
                    "429": _error("too many requests from this store, or without a valid token from this "
                                  "address; see Retry-After"),
                }}},
            "/api/v1/lookup": {"get": {
                "summary": "A shopper's order lookup", "parameters": lookup_params,
                "responses": {"200": {"description": "the order",
                                      "content": {"application/json": {
                                          "schema": {"$ref": "#/components/schemas/Order"}}}},
                              "404": _error("no order matches (the same answer for every reason, and when "
                                            "neither email nor zip is given)"),
                              "422": _error("merchant or order is missing, or a parameter cannot match any order"),
                              "429": _error("too many lookups from this address, or too many failed lookups "
                                            "of this order; see Retry-After")}}},
            "/api/v1/account": {"get": {"summary": "The token's account", "security": [{"storeToken": []}],
                                        "responses": {"200": {"description": "merchant and subscription",
                                                              "content": {"application/json": {}}},
                                                      "401": _error("unknown or revoked token"),
                                                      "402": _error("subscription lapsed (its end date in expires)"),
                                                      "429": _error("too many requests without a valid token")}}},
            "/api/v1/orders/{order_number}": {"get": {
                "summary": "The store's own order", "security": [{"storeToken": []}],
                "parameters": [order_param],
                "responses": {"200": {"description": "the order", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Order"}}}},
                    "401": _error("unknown or revoked token"), "404": _error("not this store's order"),
                    "429": _error("too many requests without a valid token")}}},
            "/status/{merchant}": {
                "parameters": [merchant_param],
                "get": {"summary": "The lookup form, or the order a signed link names (HTML)",
                        "parameters": [
                            {"name": "order", "in": "query", "schema": {"type": "string"},
                             "description": "with key: the order of a status_url"},
                            {"name": "key", "in": "query", "schema": {"type": "string"},
                             "description": "the signature of a status_url; with it the page shows the order"}],
                        "responses": {"200": _html("the lookup form, or the order of a signed link"),
                                      "404": _html("no such store, or a link that names no order (altered, "
                                                   "or signed with a secret no longer accepted)"),
                                      "429": _html("too many lookups; see Retry-After")}},
                "post": {"summary": "The order's status page (HTML)",
                         "requestBody": {"required": True, "content": {
                             "application/x-www-form-urlencoded": {"schema": form}}},
                         "responses": {"200": _html("the order's status"),
                                       "404": _html("no such store, or no order matches"),
                                       "413": _html("the form is too large"),
                                       "429": _html("too many lookups; see Retry-After")}}},
            "/status/{merchant}/snippet": {"get": {
                "summary": "HTML form for the merchant's own site", "parameters": [merchant_param],
                "responses": {"200": {"description": "the form's HTML",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "404": _html("no such store")}}},
            "/status/{merchant}/look.css": {"get": {
                "summary": "The merchant's colours for its pages", "parameters": [merchant_param],
                "responses": {"200": {"description": "CSS custom properties --accent and --on-accent",
                                      "content": {"text/css": {"schema": {"type": "string"}}}},
                              "404": _html("no such store")}}},
            "/healthz": {"get": {"summary": "Liveness and database check",
                                 "responses": {"200": {"description": "ok"}, "503": {"description": "down"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
        },
    }
