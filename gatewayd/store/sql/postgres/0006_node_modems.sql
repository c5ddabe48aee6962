-- additive
-- Which modems (by name, with their pool) each node drives, so that a submit to any node
-- may name a modem or pool of another (gatewayd.store.postgres: announce_modems).
CREATE TABLE node_modems (
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    pool TEXT NOT NULL,
    PRIMARY KEY (node, name)
);
