/*
 * errors.c - the documented error object, and errno -> HTTP mapping.
 *
 *   {"type":"error","error":{"type":TYPE,"message":MSG[,"details":{...}]},
 *    "request_id":"req_..."}
 *
 * request_id is required by the SDK's ErrorResponse type (string or null); a
 * fresh id per error, logged at debug level with the status, lets an operator
 * match a client's report to the server log.
 * The SDK picks its exception class from the HTTP status and exposes
 * error.details.error_code as `errorCode`, so both must be right.
 */
#include "api/api.h"
#include "core/log.h"
#include "core/rand.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *type_for_status(int status)
{
	switch (status) {
	case 400:
	case 405:
	case 413:
	case 415:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 402:
		return "billing_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 408:
		return "timeout_error";
	case 409:
	case 412:
		return "conflict_error";
	case 429:
		return "rate_limit_error";
	case 529:
	case 503:
		return "overloaded_error";
	default:
		return status >= 500 ? "api_error" : "invalid_request_error";
	}
}

static void send_error(al_http_req *req, int status, const char *type, json_t *details,
		       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void send_error(al_http_req *req, int status, const char *type, json_t *details,
		       const char *fmt, va_list ap)
{
	char msg[512], rid[64];
	json_t *body = NULL, *err = NULL;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (al_id_new("req", rid, sizeof(rid)) < 0)
		rid[0] = '\0'; /* sent as null, which the type allows */
	/* Belt and braces: a message must never carry a credential. */
	al_secret_scrub(msg);
	err =
	    json_pack("{s:s, s:s}", "type", type ? type : type_for_status(status), "message", msg);
	if (err != NULL && details != NULL) {
		json_object_set_new(err, "details", details);
		details = NULL;
	}
	if (err != NULL)
		body = json_pack("{s:s, s:o, s:o}", "type", "error", "error", err, "request_id",
				 rid[0] ? json_string(rid) : json_null());
	json_decref(details);
	if (body == NULL) {
		static const char oom[] = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
					  "\"message\":\"out of memory\"},\"request_id\":null}";
		al_http_respond(req, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	if (rid[0])
		al_debug("api", "error %d %s: %s", status, rid, msg);
	al_http_respond_json(req, status, body);
}

void al_api_error(al_http_req *req, int status, const char *type, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(req, status, type, NULL, fmt, ap);
	va_end(ap);
}

void al_api_error_details(al_http_req *req, int status, const char *type, json_t *details,
			  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_error(req, status, type, details, fmt, ap);
	va_end(ap);
}

void al_api_error_errno(al_http_req *req, int rc, const char *what)
{
	const char *w = what ? what : "resource";

	switch (rc) {
	case -ENOENT:
		al_api_error(req, 404, NULL, "%s not found", w);
		break;
	case -EEXIST:
		al_api_error(req, 409, NULL, "%s already exists", w);
		break;
	case -ESTALE:
		al_api_error(req, 409, NULL, "%s was modified concurrently; retry", w);
		break;
	case -EINVAL:
		al_api_error(req, 400, NULL, "invalid %s", w);
		break;
	case -EACCES:
	case -EPERM:
		al_api_error(req, 403, NULL, "not allowed to access %s", w);
		break;
	case -ENOMEM:
	case -EAGAIN:
	case -EBUSY:
		al_api_error(req, 529, NULL, "the server is overloaded; retry later");
		break;
	case -ESHUTDOWN:
		al_api_error(req, 503, NULL, "the server is shutting down");
		break;
	default:
		al_error("api", "internal error on %s: %s", w, strerror(-rc));
		al_api_error(req, 500, NULL, "internal server error");
		break;
	}
}
