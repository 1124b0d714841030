"""The GraphQL documents the shopify connector sends to the Admin API, and nothing else.

One place for them so that the tests can check every one against Shopify's own schema (SDL, version
2026-07) with its variables. The ``first:`` sizes are kept small on purpose: Shopify charges a query by the
most it *could* return (``requestedQueryCost``) before it runs, so a generous ``first: 250`` would make a
single order read cost more than a Standard store restores in several seconds.
"""

from __future__ import annotations

#: The order as the connector decides from it: whether it is closed or cancelled, paid, its tags (the
#: status tags this connector keeps), its fulfilments with their tracking numbers (read before anything is
#: written) and its fulfilment orders with what each still has to ship.
ORDER = """
query CartstatusOrder($id: ID!) {
  order(id: $id) {
    id
    name
    closed
    cancelledAt
    displayFinancialStatus
    displayFulfillmentStatus
    tags
    fulfillments(first: 10) {
      id
      status
      trackingInfo(first: 5) { company number }
    }
    fulfillmentOrders(first: 5) {
      pageInfo { hasNextPage }
      nodes {
        id
        status
        lineItems(first: 20) { nodes { id remainingQuantity } }
      }
    }
  }
}
""".strip()

#: One shipment: some or all of the order's open fulfilment-order lines, with one carrier's numbers.
FULFIL = """
mutation CartstatusFulfil($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
""".strip()

#: More numbers for a fulfilment already made (everything shipped, a later parcel of the same carrier): Shopify
#: replaces the fulfilment's tracking with what is given, so the numbers it held are sent with the new ones.
TRACKING_UPDATE = """
mutation CartstatusTrackingUpdate($fulfillmentId: ID!, $trackingInfoInput: FulfillmentTrackingInput!,
                                  $notifyCustomer: Boolean) {
  fulfillmentTrackingInfoUpdate(fulfillmentId: $fulfillmentId, trackingInfoInput: $trackingInfoInput,
                                notifyCustomer: $notifyCustomer) {
    fulfillment { id status }
    userErrors { field message }
  }
}
""".strip()

CLOSE = """
mutation CartstatusClose($input: OrderCloseInput!) {
  orderClose(input: $input) {
    order { id closed }
    userErrors { field message }
  }
}
""".strip()

#: Asynchronous at Shopify: the reply carries a job; the order shows ``cancelledAt`` once it is done.
#: ``orderCancelUserErrors`` is where this mutation's refusals come (``userErrors`` is deprecated on it).
CANCEL = """
mutation CartstatusCancel($orderId: ID!, $reason: OrderCancelReason!, $restock: Boolean!,
                          $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, restock: $restock, notifyCustomer: $notifyCustomer,
              staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { field message code }
  }
}
""".strip()

MARK_PAID = """
mutation CartstatusMarkPaid($input: OrderMarkAsPaidInput!) {
  orderMarkAsPaid(input: $input) {
    order { id displayFinancialStatus }
    userErrors { field message }
  }
}
""".strip()

TAGS_ADD = """
mutation CartstatusTagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
""".strip()

TAGS_REMOVE = """
mutation CartstatusTagsRemove($id: ID!, $tags: [String!]!) {
  tagsRemove(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
""".strip()

#: The connection test: the cheapest authenticated read there is (cost 1).
SHOP = "query CartstatusShop { shop { name myshopifyDomain } }"

ALL = {"order": ORDER, "fulfil": FULFIL, "tracking_update": TRACKING_UPDATE, "close": CLOSE, "cancel": CANCEL,
       "mark_paid": MARK_PAID, "tags_add": TAGS_ADD, "tags_remove": TAGS_REMOVE, "shop": SHOP}
