"""Errors of the sharing API: a stable English code, an HTTP status and a plain Chinese message."""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ErrorCode(StrEnum):
    """Stable codes clients can program against; the message may be reworded, the code never."""

    CREDENTIAL_MISSING = "CREDENTIAL_MISSING"
    # Unknown, expired and disabled keys alike: the answer confirms nothing about a key.
    CREDENTIAL_INVALID = "CREDENTIAL_INVALID"
    RATE_LIMITED = "RATE_LIMITED"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    BODY_INVALID = "BODY_INVALID"
    END_USER_REQUIRED = "END_USER_REQUIRED"
    END_USER_INVALID = "END_USER_INVALID"
    PURPOSE_REQUIRED = "PURPOSE_REQUIRED"
    PURPOSE_NOT_ALLOWED = "PURPOSE_NOT_ALLOWED"
    OPERATION_NOT_GRANTED = "OPERATION_NOT_GRANTED"
    FIELD_NOT_GRANTED = "FIELD_NOT_GRANTED"
    AREA_NOT_GRANTED = "AREA_NOT_GRANTED"
    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    VERIFY_LIMITED = "VERIFY_LIMITED"
    LOOKUP_LIMITED = "LOOKUP_LIMITED"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    RATE_LIMIT_UNAVAILABLE = "RATE_LIMIT_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


STATUS = {
    ErrorCode.CREDENTIAL_MISSING: 401,
    ErrorCode.CREDENTIAL_INVALID: 401,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.BODY_INVALID: 400,
    ErrorCode.END_USER_REQUIRED: 400,
    ErrorCode.END_USER_INVALID: 400,
    ErrorCode.PURPOSE_REQUIRED: 400,
    ErrorCode.PURPOSE_NOT_ALLOWED: 403,
    ErrorCode.OPERATION_NOT_GRANTED: 403,
    ErrorCode.FIELD_NOT_GRANTED: 403,
    ErrorCode.AREA_NOT_GRANTED: 403,
    ErrorCode.PERSON_NOT_FOUND: 404,
    ErrorCode.VERIFY_LIMITED: 429,
    ErrorCode.LOOKUP_LIMITED: 429,
    ErrorCode.BATCH_TOO_LARGE: 422,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.AUDIT_UNAVAILABLE: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.RATE_LIMIT_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}

MESSAGES = {
    ErrorCode.CREDENTIAL_MISSING: "缺少访问凭证：请在 X-API-Key 请求头中提供 API 密钥",
    ErrorCode.CREDENTIAL_INVALID: "访问凭证无效（密钥不存在、已过期或接入单位已停用），请联系平台管理员",
    ErrorCode.RATE_LIMITED: "请求过于频繁，已超过本单位的访问频率限制，请稍后重试",
    ErrorCode.BODY_TOO_LARGE: "请求体过大",
    ErrorCode.BODY_INVALID: "请求体无法解析：须为 UTF-8 编码的 JSON",
    ErrorCode.END_USER_REQUIRED: "缺少 X-End-User 请求头：须注明实际操作人员",
    ErrorCode.END_USER_INVALID: "X-End-User 请求头不合法：须为 UTF-8（可用百分号编码）的账号，只含文字、数字和 . _ - @ ·",
    ErrorCode.PURPOSE_REQUIRED: "缺少 X-Purpose 请求头：须注明查询用途",
    ErrorCode.PURPOSE_NOT_ALLOWED: "该用途未获授权",
    ErrorCode.OPERATION_NOT_GRANTED: "本单位未获授权使用该接口",
    ErrorCode.FIELD_NOT_GRANTED: "请求的字段未获授权",
    ErrorCode.AREA_NOT_GRANTED: "请求的区域超出本单位的授权范围",
    ErrorCode.PERSON_NOT_FOUND: "未找到该人员，或该人员不在本单位的授权范围内",
    ErrorCode.VERIFY_LIMITED: "该证件或该姓名与出生日期今日核验不符的次数已达上限，24 小时内不再核验",
    ErrorCode.LOOKUP_LIMITED: "本单位按证件查询未找到人员的次数已达今日上限，暂停按证件查询，请稍后再试",
    ErrorCode.BATCH_TOO_LARGE: "批量核验每次最多 1000 条",
    ErrorCode.VALIDATION_ERROR: "请求参数不合法",
    ErrorCode.AUDIT_UNAVAILABLE: "审计日志暂时无法写入，为保证每次访问留痕，本次请求未予处理",
    ErrorCode.DATABASE_UNAVAILABLE: "人口库暂时无法访问，请稍后重试",
    ErrorCode.RATE_LIMIT_UNAVAILABLE: "访问频率控制服务暂时无法访问，为防止超额查询，本次请求未予处理，请稍后重试",
    ErrorCode.INTERNAL_ERROR: "服务内部错误，已记入服务日志，请联系平台管理员",
}


class ErrorOut(BaseModel):
    """The body of every error response."""

    code: ErrorCode
    message: str
    detail: Any = None


class SharingError(Exception):
    """A refusal with its stable code; the route class turns it into a JSON error response."""

    def __init__(self, code: ErrorCode, message: str | None = None, *, detail: Any = None) -> None:
        self.code = code
        self.message = message or MESSAGES[code]
        self.detail = detail
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    @property
    def status_code(self) -> int:
        """The HTTP status of this code."""
        return STATUS[self.code]

    def body(self) -> ErrorOut:
        """The JSON body."""
        return ErrorOut(code=self.code, message=self.message, detail=self.detail)


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given codes, grouped by status, each naming its codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(STATUS[code], []).append(code.value)
    return {
        status: {"model": ErrorOut, "description": "错误：" + ", ".join(names)}
        for status, names in sorted(by_status.items())
    }
