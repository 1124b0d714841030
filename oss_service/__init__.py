"""The hosted Order Status System (OSS): stores push status updates, shoppers look their order up.

``cartstatus-oss serve`` runs it; ``cartstatus-oss accounts`` manages stores.

Importing the package loads nothing: the connector needs only the wire format
(:mod:`cartstatus.oss.wire`), and ``cartstatus fire`` should not pay for the
server. Import what you need from its module: the app from
:mod:`cartstatus.oss.app`, the store from :mod:`cartstatus.oss.service`, the
database from :mod:`cartstatus.oss.storage`.
"""
