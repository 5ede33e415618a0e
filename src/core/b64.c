#include "core/b64.h"

#include <errno.h>
#include <stdint.h>

static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t al_b64url_len(size_t n)
{
	return (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/*
 * The one encoder: `alpha` is the alphabet, `pad` whether the last group is
 * padded with '=' to four characters. out must hold outlen bytes, checked by
 * the callers against the length with their padding rule.
 */
static void encode(const uint8_t *p, size_t n, const char *alpha, int pad, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		out[o++] = alpha[(v >> 6) & 63];
		out[o++] = alpha[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		if (pad) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		out[o++] = alpha[(v >> 6) & 63];
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
}

int al_b64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
	if (outlen < al_b64url_len(n) + 1)
		return -ENOSPC;
	encode(in, n, url_alphabet, 0, out);
	return 0;
}

static int dec(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

int al_b64url_decode(const char *in, size_t n, void *out, size_t outlen, size_t *outn)
{
	uint8_t *o = out;
	uint32_t acc = 0;
	size_t w = 0;
	int bits = 0;

	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int v = dec(in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (w >= outlen)
				return -ENOSPC;
			o[w++] = (uint8_t)(acc >> bits);
		}
	}
	*outn = w;
	return 0;
}

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t al_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

int al_b64_encode(const void *in, size_t n, char *out, size_t outlen)
{
	if (outlen < al_b64_len(n) + 1)
		return -ENOSPC;
	encode(in, n, std_alphabet, 1, out);
	return 0;
}

static int dec_std(char c)
{
	if (c == '-' || c == '_')
		return -1;
	return dec(c);
}

int al_b64_decode(const char *in, size_t n, void *out, size_t outlen, size_t *outn)
{
	uint8_t *o = out;
	uint32_t acc = 0;
	size_t w = 0, pad = 0;
	int bits = 0;

	if (n % 4 != 0)
		return -EINVAL;
	while (pad < 2 && n > 0 && in[n - 1] == '=') {
		n--;
		pad++;
	}
	for (size_t i = 0; i < n; i++) {
		int v = dec_std(in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (w >= outlen)
				return -ENOSPC;
			o[w++] = (uint8_t)(acc >> bits);
		}
	}
	/* A third '=' lands in the loop above and fails there; leftover bits
	 * must be zero so "QR==" and "QQ==" do not both decode to "A". */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -EINVAL;
	*outn = w;
	return 0;
}
