"""Request and response models of the collection pages and their JSON check."""

from pydantic import BaseModel, Field

# Form input name → sq_cj column (ASCII names keep the HTML and the JavaScript simple).
FORM_KEYS = {
    "name": "姓名",
    "id_no": "身份证号",
    "sex": "性别",
    "birth_date": "出生日期",
    "ethnicity": "民族",
    "phone": "联系电话",
    "address": "现住址",
    "population_type": "人口类型",
    "residence_status": "居住状态",
    "remark": "备注",
}


class PersonForm(BaseModel):
    """The one-person form as posted (every cell as typed)."""

    csrf: str = ""
    replaces: int | None = None
    person: str | None = Field(default=None, max_length=12)
    community_code: str = Field(default="", max_length=32)
    name: str = Field(default="", max_length=100)
    id_no: str = Field(default="", max_length=40)
    sex: str = Field(default="", max_length=10)
    birth_date: str = Field(default="", max_length=20)
    ethnicity: str = Field(default="", max_length=20)
    phone: str = Field(default="", max_length=30)
    address: str = Field(default="", max_length=200)
    population_type: str = Field(default="", max_length=10)
    residence_status: str = Field(default="", max_length=10)
    remark: str = Field(default="", max_length=500)

    def columns(self) -> dict[str, str]:
        """The cells keyed by sq_cj column (社区代码 only when the form sent one)."""
        cells = {column: getattr(self, key) for key, column in FORM_KEYS.items()}
        if self.community_code:
            cells["社区代码"] = self.community_code
        return cells


class CheckIn(BaseModel):
    """A draft of the form, checked as the officer types."""

    values: dict[str, str] = Field(default_factory=dict, max_length=20)


class CheckOut(BaseModel):
    """Verdict on a draft: messages per form input name ('' for the row as a whole)."""

    ok: bool
    errors: dict[str, list[str]]
