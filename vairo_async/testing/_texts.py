"""Every Turkish message the emulator answers with, in one place."""

from __future__ import annotations

__all__ = [
    "BAD_DEST",
    "BAD_JSON",
    "BAD_MESSAGE",
    "BAD_MESSAGES",
    "BAD_OBJECT",
    "BAD_SENDER",
    "BAD_TEXT",
    "BAD_TR_CHAR",
    "FAILURE_LOG",
    "RATE_LIMITED",
    "SENDER_NOT_ALLOWED",
    "SENDER_TOO_LONG",
    "SERVER_ERRORS",
    "UNAUTHORIZED",
    "UNKNOWN_PACKAGE",
    "UNKNOWN_PATH",
    "WRONG_METHOD",
]

UNAUTHORIZED = "Geçersiz API anahtarı."
UNKNOWN_PATH = "Geçersiz istek adresi."
WRONG_METHOD = "Bu adres için geçersiz istek yöntemi."
UNKNOWN_PACKAGE = "Gönderim bulunamadı."
RATE_LIMITED = "Çok fazla istek gönderildi, lütfen daha sonra tekrar deneyin."

BAD_JSON = "Geçersiz istek: gövde UTF-8 JSON olmalı."
BAD_OBJECT = "Geçersiz istek: gövde bir JSON nesnesi olmalı."
BAD_SENDER = "Başlık (baslik) eksik ya da geçersiz."
SENDER_TOO_LONG = "Başlık (baslik) çok uzun."
SENDER_NOT_ALLOWED = "Başlık onaylı değil: {sender}"
BAD_TR_CHAR = "tr_char alanı true ya da false olmalı."
BAD_MESSAGES = "Mesaj listesi (mesajlar) boş ya da geçersiz."
BAD_MESSAGE = "{number}. mesaj geçersiz: msg ve dest alanları olmalı."
BAD_TEXT = "{number}. mesajın metni (msg) boş ya da geçersiz."
BAD_DEST = "{number}. mesajın numarası (dest) geçersiz: 5 ile başlayan 10 hane olmalı."

SERVER_ERRORS = {
    500: "Sunucu hatası oluştu.",
    502: "Ağ geçidi geçersiz bir yanıt aldı.",
    503: "Servis geçici olarak kullanılamıyor.",
    504: "Ağ geçidi zaman aşımına uğradı.",
}

FAILURE_LOG = "Gönderim #{package_id} sırasında hata oluşu: {code}"
"""The failure log's `mesaj`, typo included, as the service writes it."""
