"""Two nodes in one process, for the cross-node tests: two realms with their own listeners, one
database, and one in-memory bus and presence directory between them (a cluster without Redis).

The bus serialises every event, as one between processes would. Node ``a`` runs the dispatch
server, which sends logins to the two notification servers in turn. Run by ``TwoNodeServer``
(msnp6.testing) as ``twistd -n -y <file>.tac``; the .tac file calls ``application()``.
"""
from __future__ import annotations

import itertools
import json
import os

from twisted.application import service

from .bus.memory import MemoryBus
from .core.realm import Realm
from .directory.memory import MemoryDirectory
from .tap import Options, make_config, open_store, service_tree

#: Environment variables the .tac reads: the msnp6 options of node a (a JSON list), and node b's
#: listeners (a JSON object, "ns" and "sb" -> endpoint).
OPTIONS_VARIABLE = "MSNP6_NODE_A_ARGS"
SECOND_NODE_VARIABLE = "MSNP6_NODE_B_LISTENERS"

TAC = "from msnp6.testing_nodes import application\napplication = application()\n"


def application() -> service.IService:
    from twisted.internet import reactor

    options = Options()
    options.parseOptions(json.loads(os.environ[OPTIONS_VARIABLE]))
    second = json.loads(os.environ[SECOND_NODE_VARIABLE])
    store, key = open_store(options, reactor)
    bus, directory = MemoryBus(serialise=True), MemoryDirectory()
    a = Realm(make_config(options), reactor, store, key, bus, directory, node_name="a")
    b = Realm(make_config(options), reactor, store, key, bus, directory, node_name="b")
    turns = itertools.cycle([a, b])
    a.ns_picker = lambda handle: next(turns).address("ns")
    app = service.Application("msnp6-two-nodes")
    tree = service_tree(options, store, [(a, {n: options[n] for n in ("ds", "ns", "sb")}), (b, second)], reactor)
    tree.setServiceParent(app)
    return app
