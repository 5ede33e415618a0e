/*
 * state.h - the requestState of multi round-trip requests (MRTR), sealed.
 *
 * On tools/call, resources/read and prompts/get a 2026-07-28 server may
 * answer {resultType: "input_required", inputRequests, requestState}; the
 * client retries with the same params, its inputResponses and the exact
 * requestState. The state travels through the client, so it is
 * attacker-controlled input: the spec requires integrity protection when it
 * matters and recommends binding it to the principal, a short expiry and the
 * originating request. This file does all three with AES-256-GCM (which
 * also keeps the server's payload private):
 *
 *   token = "v1." base64url(nonce[12] || expires_ms[8, big-endian] ||
 *                           ciphertext || tag[16])
 *   AAD   = "airlock-mcp-state-v1" || SHA-256(principal) || binding[32] ||
 *           expires_ms[8]
 *
 * The binding is a digest of the request the state belongs to
 * (al_mcp_state_bind); a state presented with another principal, another
 * request, another key or any changed byte fails authentication. It bounds
 * replay to the expiry; single use, where needed, is the caller's (a
 * server-side record of consumed nonces).
 *
 * The key is 32 secret bytes the caller owns (the same on every instance
 * behind a load balancer, since any instance may receive the retry); this
 * file never copies, logs or frees it.
 */
#ifndef AL_MCP_STATE_H
#define AL_MCP_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct al_buf;

#define AL_MCP_STATE_KEY_LEN  32
#define AL_MCP_STATE_BIND_LEN 32
/* Largest payload sealed, and so the largest token accepted (~ 4/3 of it). */
#define AL_MCP_STATE_MAX_PAYLOAD (64u << 10)

/*
 * The binding of a request: SHA-256 over the canonical (sorted keys,
 * compact) JSON of {"method", "name", "arguments"}. `name` is params.name or
 * params.uri (NULL when none); `args` is params.arguments (NULL when none).
 * inputResponses, requestState and _meta are deliberately not part of it:
 * they change between the rounds of one request. 0, -EINVAL, -ENOMEM.
 */
int al_mcp_state_bind(const char *method, const char *name, const json_t *args,
		      unsigned char out[AL_MCP_STATE_BIND_LEN]);

/*
 * Seals `n` bytes of payload for `principal` (NULL or "" when there is no
 * authenticated caller), bound to `bind`, valid until now_ms + ttl_ms.
 * Appends the token (ASCII, safe in JSON and headers) to `out`.
 * 0, -EINVAL (payload too large, ttl not positive), -ENOMEM, -EIO (crypto
 * library failure).
 */
int al_mcp_state_seal(const unsigned char key[AL_MCP_STATE_KEY_LEN], const char *principal,
		      const unsigned char bind[AL_MCP_STATE_BIND_LEN], int64_t now_ms,
		      int64_t ttl_ms, const void *payload, size_t n, struct al_buf *out);

/*
 * Opens a token received from a client. On success appends the payload to
 * `payload` and returns 0. -EINVAL when the token is malformed or fails
 * authentication (wrong key, principal or binding, or altered: the causes
 * are not told apart); -ESTALE when it is authentic but expired at now_ms;
 * -ENOMEM; -EIO. A server answers both refusals with -32602.
 */
int al_mcp_state_open(const unsigned char key[AL_MCP_STATE_KEY_LEN], const char *principal,
		      const unsigned char bind[AL_MCP_STATE_BIND_LEN], int64_t now_ms,
		      const char *token, size_t len, struct al_buf *payload);

#endif
