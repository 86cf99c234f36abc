// Package host runs a broker process around the MQTT engine
// (broker/engine): it binds the client listeners (TCP, TLS, WebSocket) and
// hands every accepted connection to the engine as a plain net.Conn; it
// serves the admin HTTP endpoint (/healthz, /readyz, /metrics, /v1/*) and
// guards /v1/* with the admin token; it watches the config file and
// applies its hot fields; it sets the process's memory limit; and it
// sequences startup (bind, recover, accept, ready) and shutdown (not
// ready, stop accepting, drain, close the store).
//
// The host reaches the engine only through the interfaces it declares
// (Engine, and its parts ConnHandler, ConnRefuser, AdminBackend and
// Reconfigurable) and the engine's exported report types (engine.Stats
// with its QueueDepth and PolicyStats, engine.SessionInfo); cmd/bollard wires a real engine.Server into a
// Runner, and the tests a fake one. A Role decides whether the engine
// serves the clients the listeners accept; a single broker always does
// (Single).
package host
