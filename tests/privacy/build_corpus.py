#!/usr/bin/env python3
"""Write tests/privacy/corpus.jsonl: the labelled prompts behind docs/privacy.md.

    python tests/privacy/build_corpus.py

The prompts are written by hand below; the numbers in them (cards, resident IDs, IBANs,
keys) are drawn from a fixed seed and made valid, or deliberately invalid, by the check
algorithms implemented here on their own, not by the detector under test. Every value is
made up: no prompt holds a real person's data or a working secret.

Each line: ``id``, ``lang`` (en or zh), ``text``, ``expected`` (the categories a careful
reader finds in it, whatever the detector does), ``values`` (the sensitive substrings, which
redaction must remove) and ``note``. Labels say what is there, not what the detector finds:
the known misses and false alarms are listed in docs/privacy.md.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("corpus.jsonl")
rng = random.Random(20261122)

# ------------------------------------------------------------------ check algorithms


def luhn_digit(payload: str) -> str:
    total = 0
    for i, char in enumerate(reversed(payload)):
        value = int(char) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def card(prefix: str, length: int, *, valid: bool = True) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return body + check


def grouped(number: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(number[pos : pos + size])
        pos += size
    return sep.join(p for p in parts if p)


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check(first17: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def cn_id(region: str, born: str, *, valid: bool = True, check: str | None = None) -> str:
    first17 = region + born + "".join(rng.choice(string.digits) for _ in range(3))
    right = id_check(first17)
    if check is not None:  # force a check character: retry until it is the right one
        while right != check:
            first17 = region + born + "".join(rng.choice(string.digits) for _ in range(3))
            right = id_check(first17)
    if valid:
        return first17 + right
    wrong = rng.choice([c for c in "0123456789X" if c != right])
    return first17 + wrong


def iban(country: str, bban: str, *, valid: bool = True) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + rng.randint(1, 90)) % 97 or 1
    return f"{country}{check:02d}{bban}"


def spaced4(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def token(alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"


def pem_body(lines: int) -> str:
    return "\n".join(token(B64, 64) for _ in range(lines))


# ---------------------------------------------------------------------------- entries

ENTRIES: list[dict[str, Any]] = []


def add(
    lang: str, text: str, expected: list[str], note: str, values: list[str] | None = None
) -> None:
    for value in values or []:
        assert value in text, (value, text)
    ENTRIES.append(
        {
            "id": f"{lang}-{len(ENTRIES) + 1:03d}",
            "lang": lang,
            "text": text,
            "expected": sorted(set(expected)),
            "values": values or [],
            "note": note,
        }
    )


def positive(lang: str, category: str, note: str) -> Callable[[str, list[str]], None]:
    def put(text: str, values: list[str]) -> None:
        add(lang, text, [category], note, values)

    return put


def clean(lang: str, text: str, note: str) -> None:
    add(lang, text, [], note)


def emails() -> None:
    en = positive("en", "email", "e-mail address")
    for text, value in [
        ("Please forward the signed invoice to {} before Friday.", "maria.gonzalez@acme-corp.com"),
        ("Draft a polite reply to {} declining the meeting on Tuesday.", "tom_b@startup.io"),
        ('{{"name": "Ada", "email": "{}", "role": "admin"}}', "ada.lovelace@example.org"),
        ("CC: {}", "ops-team+alerts@mail.example.net"),
        ("My personal address is {}.", "JOHN.DOE@GMAIL.COM"),
        ("Reset the password of the account {} and list the steps.", "k.tanaka@example.co.jp"),
        ("From: Li Wei <{}>\nSubject: refund for order 5512", "liwei88@163.com"),
        ("Is {}? a valid address", "first.last@sub.domain.example.travel"),
    ]:
        en(text.format(value), [value])
    zh = positive("zh", "email", "e-mail address next to Chinese text")
    for text, value in [
        ("请把合同发到我的邮箱{}，谢谢。", "zhangsan@example.com"),
        ("联系人：王小明，邮箱：{}，电话稍后提供。", "xiaoming.wang@company.cn"),
        ("客户的邮箱是{}吗？帮我写一封道歉信。", "lihua_2021@qq.com"),
        ("发件人：陈静（{}）", "chenjing@alibaba-inc.com"),
        ("请用英文回复 {} 的投诉邮件。", "support@shop.example.com.cn"),
        ("邮件列表 {} 每周发送一次。", "dev-list@lists.example.org"),
    ]:
        zh(text.format(value), [value])
    zh("我的邮箱：ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ", ["ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｎ"])
    add("en", "Write to zhang dot san at example dot com", ["email"], "known miss: spelled out")
    for text in [
        "Visit example.com or www.example.org for the documentation.",
        "Use decorators like @staticmethod and @app.route('/') in Flask.",
        "Run git clone git@github.com:turnout/turnout.git and then make test.",
        "Ping @channel and @here when the deploy finishes.",
        "The SSH login on the test VM is admin@localhost, port 2222.",
        "npm install @types/node@20.11.5 --save-dev",
    ]:
        clean("en", text, "near miss: @ without an e-mail address")
    for text in [
        "请访问官网 www.example.cn 获取更多信息。",
        "在微博上@人民日报 转发这条消息。",
        "公式 a@b 表示矩阵乘法，请解释一下。",
    ]:
        clean("zh", text, "near miss: @ without an e-mail address")


def phones() -> None:
    en = positive("en", "phone", "phone number")
    for text, value in [
        ("Call me at {} after 6pm.", "(415) 555-0132"),
        ("Her cell is {}, please text instead of calling.", "415-555-0187"),
        ("Our London office: {}.", "+44 20 7946 0958"),
        ("Reach the Berlin team on {} during business hours.", "+49 30 901820"),
        ("Phone: {} ext. 12", "+1 (212) 555-0199"),
        ("The Paris number is {}, ask for Claire.", "+33 1 42 68 53 00"),
        ("Contact {} for the venue.", "312.555.0155"),
        ("Tokyo desk: {}", "+81 3-1234-5678"),
    ]:
        en(text.format(value), [value])
    add("en", "my number is 4155550132, call anytime", ["phone"], "known miss: no separators")
    zh = positive("zh", "phone", "mainland-China mobile or landline")
    for text, value in [
        ("我的手机号是{}，有事打给我。", "13800138000"),
        ("请联系张经理：{}。", "139 1234 5678"),
        ("客服电话：{}", "+86 139-1234-5678"),
        ("号码{}已停机吗？", "+8613712345678"),
        ("北京办公室电话{}，请在工作日拨打。", "010-62345678"),
        ("深圳分公司：{}", "0755-86013388"),
        ("上海总部 {} 转人事部", "(021) 54321987"),
        ("紧急联系人 {}（母亲）", "15012345678"),
        ("{} 是他的微信号", "86-13700001111"),
        ("手机：{}", "１８６１２３４５６７８"),
        ("广州办事处电话 {}，周末无人值守。", "020-8888 6666"),
        ("总机（0571）8765-4321 转 8001", "（0571）8765-4321"),
    ]:
        zh(text.format(value), [value])
    add("zh", "座机 62345678（北京），请帮我拨打", ["phone"], "known miss: no area code")
    for text in [
        "Order #2024-0315-7788 shipped yesterday.",
        "The build finished at 2024-03-15 14:30:05 UTC.",
        "ISBN 978-3-16-148410-0 is the reference edition.",
        "Revenue grew from 1,234,567 to 2,345,678 dollars.",
        "Unix time 1700000000123 in milliseconds, convert it to a date.",
        "Coordinates 39.9042, 116.4074 are in Beijing.",
        "Temperature 36.6, pulse 72, pressure 120/80, weight 68 kg.",
        "My lucky numbers are 4 8 15 16 23 42.",
        "Room 1204, extension 5123, floor 12.",
    ]:
        clean("en", text, "near miss: numbers that are not phone numbers")
    for text in [
        "订单号：20240315123456，请查询物流。",
        "快递单号 773012345678901 已签收。",
        "我的工号是 12345678，部门编号 0755。",
        "本次共采购 13800 件，单价 138.00 元。",
        "会议时间：2024年3月15日 14:30-16:00",
        "编号12345678901不是手机号。",
        "工商银行客服热线 95588，工作时间 8:00-20:00。",
        "价格 ¥13,800,138，含运费。",
        "订单 13800138000123 已发货。",
    ]:
        clean("zh", text, "near miss: numbers that are not phone numbers")


REGIONS = ["110105", "310115", "440305", "330106", "510107", "420106", "320102", "610113"]
REGIONS += ["370202", "500103", "620102", "650102"]


def birth() -> str:
    return f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def national_ids() -> None:
    en = positive("en", "national_id", "US SSN or Chinese resident ID")
    for template, value in [
        ("My SSN is {} - can you fill in the W-4 form?", "536-22-8726"),
        ("Employee record: name=J. Smith, ssn={}, dept=finance", "219-44-1930"),
        ("SSN: {}", "401-73-2285"),
        ("Applicant PRC ID number: {}", cn_id(REGIONS[0], birth())),
        ("ID {} (lower-case x)", cn_id(REGIONS[1], birth(), check="X").lower()),
    ]:
        en(template.format(value), [value])
    spaced = cn_id(REGIONS[2], birth())
    spaced = f"{spaced[:6]} {spaced[6:14]} {spaced[14:]}"
    en(f"Resident ID {spaced} on the visa form", [spaced])
    zh = positive("zh", "national_id", "Chinese resident ID with a valid check character")
    for i, template in enumerate(
        [
            "我的身份证号是{}，帮我查一下社保。",
            "身份证：{}",
            "请核对申请人信息：姓名 李娜，身份证号码{}，其他稍后提供。",
            "证件号 {}",
            "公民身份号码{}已登记",
            "乘机人：赵强 {}",
            "身份证号码是{}。",
            "租房合同乙方身份证{}，请起草补充条款。",
        ]
    ):
        value = cn_id(REGIONS[3 + i], birth(), check="X" if i == 3 else None)
        zh(template.format(value), [value])
    full = cn_id(REGIONS[11], birth())
    wide = full.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    zh(f"身份证号：{wide}", [wide])
    four = cn_id(REGIONS[0], birth())
    four = " ".join(four[i : i + 4] for i in range(0, 18, 4))
    add("zh", f"身份证 {four}", ["national_id"], "known miss: grouped by fours", [four])
    near = "near miss: resident-ID shape that fails validation"
    clean("zh", f"身份证号{cn_id(REGIONS[4], birth(), valid=False)}，校验位不对吧？", near)
    clean("zh", f"证件号码 {cn_id(REGIONS[5], birth(), valid=False)}", near)
    clean("en", f"ID {cn_id(REGIONS[6], birth(), valid=False)} looks wrong", near)
    bad_date = "110105" + "19990230" + "123"
    clean("zh", f"号码 {bad_date}{id_check(bad_date)}（2月30日）", near + " (no such date)")
    future = "310115" + "20310115" + "456"
    clean("zh", f"号码 {future}{id_check(future)}", near + " (born in the future)")
    province = "990101" + "19800101" + "789"
    clean("zh", f"编号 {province}{id_check(province)}", near + " (no such province)")
    clean("zh", "订单编号 202403151234567890，请催促发货。", "near miss: 18-digit order number")
    for text in [
        "Invalid SSN 000-12-3456 used in the unit test.",
        "The area number 666 is never issued: 666-45-1234.",
        "Group 00 is invalid, e.g. 123-00-4567.",
        "Part number 123-45-678 is out of stock.",
    ]:
        clean("en", text, "near miss: SSN shape that is never issued")
    clean("zh", "版本号 1101.0519.4912，请升级。", "near miss: dotted version")
    add(
        "zh",
        "老身份证号 110105491231002（15位）",
        ["national_id"],
        "known miss: old 15-digit ID",
        ["110105491231002"],
    )


def bank_cards() -> None:
    en = positive("en", "bank_card", "payment card with a valid Luhn digit")
    visa, mc, mc2 = card("4", 16), card("53", 16), card("2223", 16)
    amex, jcb, disc = card("37", 15), card("3530", 16), card("6011", 16)
    for template, value in [
        ("Charge it to my Visa {}, expiry 09/27.", grouped(visa, (4, 4, 4, 4))),
        ("card number: {} cvv 123", mc),
        ("Amex {} belongs to my manager.", grouped(amex, (4, 6, 5))),
        ("Please refund to {}.", grouped(card("4", 16), (4, 4, 4, 4), "-")),
        ("JCB {} was declined abroad.", jcb),
        ("Discover card {} has a fraud alert.", grouped(disc, (4, 4, 4, 4))),
        ("New Mastercard {}", mc2),
        ('{{"card": "{}", "exp": "12/26"}}', visa),
    ]:
        en(template.format(value), [value])
    zh = positive("zh", "bank_card", "UnionPay or card number with a valid Luhn digit")
    up19, up16 = card("621226", 19), card("622202", 16)
    for template, value in [
        ("我的银行卡号是{}，请帮我查询余额。", up19),
        ("工商银行卡号：{}", grouped(up16, (4, 4, 4, 4))),
        ("退款请打到卡号{}上。", card("622848", 16)),
        ("信用卡 {} 被盗刷了怎么办？", card("4", 16)),
        ("卡号：{}", grouped(card("621700", 19), (4, 4, 4, 4, 3))),
        ("招商银行 {}", grouped(card("5187", 16), (4, 4, 4, 4), "-")),
        ("还款账户：{}（建设银行）", card("621700", 16)),
    ]:
        zh(template.format(value), [value])
    near = "near miss: card-like number that fails Luhn or has no card network"
    clean("en", f"Test with {grouped(card('4', 16, valid=False), (4, 4, 4, 4))} please", near)
    clean("en", "Order number 2024031512345678 is delayed.", near)
    clean(
        "zh", f"银行卡号 {grouped(card('622202', 19, valid=False), (4, 4, 4, 4, 3))} 对吗？", near
    )
    clean("zh", "流水号 1234567890123456789，请核对。", near)
    clean("en", "Tracking 1Z999AA10123456784 with UPS", near)
    clean("en", "IMEI 490154203237518 of the lost phone", near + " (an IMEI passes Luhn)")
    clean("en", "The number 79927398713 is the Luhn textbook example.", near)
    clean("zh", f"发票号码 {card('1', 16)}，金额 1280 元", near + " (Luhn ok, no network)")


IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60 X054 2811 1010 0000 0123 456",
    "CH93 0076 2011 6238 5295 7",
    "BE68 5390 0754 7034",
]


def ibans() -> None:
    en = positive("en", "iban", "IBAN with a valid mod-97 check")
    for i, value in enumerate(IBANS):
        template = ["Please wire the deposit to IBAN {}.", "Account: {}", "{} (my salary account)"]
        en(template[i % 3].format(value), [value])
    irish, swedish = spaced4(iban("IE", "AIBK93115212345678")), iban("SE", "50000000058398257466")
    en(f"SEPA transfer to {irish} please", [irish])
    en(f"IBAN: {swedish}", [swedish])
    zh = positive("zh", "iban", "IBAN in Chinese text")
    for template, value in [
        ("请汇款到德国账户 IBAN：{}", IBANS[0].replace(" ", "")),
        ("收款人 IBAN：{}，开户行巴黎", IBANS[2]),
        ("供应商的银行账号是{}。", spaced4(iban("AT", "1904300234573201"))),
        ("波兰账户：{}", spaced4(iban("PL", "109010140000071219812874"))),
        ("退款账户 {} 请核对", iban("GB", "NWBK60161331926819")),
    ]:
        zh(template.format(value), [value])
    near = "near miss: IBAN shape that fails validation"
    clean("en", "IBAN DE88 3704 0044 0532 0130 00 bounced, why?", near + " (check digits)")
    clean("en", "The form shows GB82 WEST 1234 5698 7654 only.", near + " (too short)")
    clean("zh", f"账号 {spaced4(iban('DE', '370400440532013000', valid=False))} 退回了", near)
    clean("zh", "账号 CN12 3456 7890 1234 5678 是什么格式？", near + " (CN has no IBAN)")
    clean("en", "We are ISO 27001 and SOC 2 certified.", near)
    clean("en", "The SWIFT code is DEUTDEFF500.", "near miss: a bank's BIC, not an account")
    clean("en", "Test account DE12 TEST 0000 is made up.", "near miss: IBAN-like words")


def ip_addresses() -> None:
    en = positive("en", "ip_address", "IPv4 or IPv6 address")
    for template, value in [
        ("The database at {} keeps timing out.", "10.0.12.7"),
        ("ssh root@{} -p 2222 fails with permission denied", "203.0.113.45"),
        ("Whitelist {} in the firewall.", "198.51.100.23"),
        ("nginx: upstream api {{ server {}:8080; }}", "192.168.1.20"),
        ("Client IP: {}", "8.8.4.4"),
        ("IPv6 address {} is unreachable", "2001:db8:85a3::8a2e:370:7334"),
        ("link-local {}%eth0 answers ping", "fe80::1ff:fe23:4567:890a"),
        ("curl http://{}/api/health returns 502", "172.16.254.1"),
        ("connect to [{}]:8080 from the pod", "2001:db8::1"),
        ("legacy box 192.168.001.010 still answers", "192.168.001.010"),
    ]:
        en(template.format(value), [value])
    zh = positive("zh", "ip_address", "IP address in Chinese text")
    for template, value in [
        ("服务器IP是{}，帮我排查一下。", "192.168.10.5"),
        ("公网地址：{}", "47.100.23.8"),
        ("数据库在{}上，端口3306", "10.1.2.3"),
        ("IPv6地址{}的路由有问题", "2408:8756:c52:1aec::5"),
        ("用户登录IP：{}（广东）", "120.230.45.67"),
    ]:
        zh(template.format(value), [value])
    for text in [
        "Upgrade to version 1.2.3 of the SDK.",
        "Python 3.11.7 and numpy 1.26.4 are installed.",
        "127.0.0.1 is the loopback address; explain it.",
        "Bind the dev server to 0.0.0.0:8000.",
        "999.12.1.1 is not an address, right?",
        "MAC 00:1A:2B:3C:4D:5E is on the label.",
        "The meeting starts at 12:30:45 sharp.",
        "Explain std::vector<int> and the slice a[1::2].",
        "Set the netmask to 255.255.255.0.",
        "See section 4.2.1.3 of the specification.",
        "Windows build 10.0.19045.3803 is installed.",
        "docker run python:3.11-slim and node v20.11.1",
    ]:
        clean("en", text, "near miss: dotted or colon-separated numbers")
    clean("zh", "版本号 v2.3.4.5 已发布。", "near miss: version")
    clean("zh", "时间 10:30:00 开会，地点三楼。", "near miss: time")
    clean("zh", "请解释第 1.2.3.4 条的含义。", "near miss: clause number")


def api_keys() -> None:
    en = positive("en", "api_key", "API key or token of a major provider")
    for template, value in [
        ("My key is {}, why does it return 401?", "sk-proj-" + token(B64URL, 120)),
        ("openai.api_key = '{}'", "sk-" + token(ALNUM, 48)),
        ("ANTHROPIC_API_KEY={}", "sk-ant-api03-" + token(B64URL, 93) + "AA"),
        ("aws_access_key_id = {}", "AKIA" + token(string.ascii_uppercase + "234567", 16)),
        ("Maps key {} stopped working", "AIza" + token(B64URL, 35)),
        ("git remote set-url origin https://{}@github.com/me/repo", "ghp_" + token(ALNUM, 36)),
        ("token: {}", "github_pat_11" + token(ALNUM, 20) + "_" + token(ALNUM, 59)),
        (
            "SLACK_BOT_TOKEN={}",
            f"xoxb-{rng.randint(10**11, 10**12)}-{rng.randint(10**12, 10**13)}-" + token(ALNUM, 24),
        ),
        ('stripe.api_key = "{}"', "sk_live_51" + token(ALNUM, 96)),
        ("huggingface-cli login --token {}", "hf_" + token(string.ascii_letters, 34)),
        (
            "Authorization: Bearer {}",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0"
            "NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ." + token(B64URL, 43),
        ),
        ("GROQ_API_KEY={}", "gsk_" + token(ALNUM, 52)),
    ]:
        en(template.format(value), [value])
    zh = positive("zh", "api_key", "API key in Chinese text")
    for template, value in [
        ("我的DeepSeek密钥是{}，帮我看看怎么调用。", "sk-" + token(HEX, 32)),
        ("通义千问 DASHSCOPE_API_KEY={}", "sk-" + token(HEX, 32)),
        ("这个令牌{}泄露了吗？", "glpat-" + token(B64URL, 20)),
        ("临时凭证 {}，过期时间一小时", "ASIA" + token(string.ascii_uppercase + "234567", 16)),
        ("OpenAI 密钥：{}", "sk-proj-" + token(B64URL, 100)),
    ]:
        zh(template.format(value), [value])
    secret = token(B64, 40)
    add(
        "en",
        f"aws_secret_access_key = {secret}",
        ["api_key"],
        "known miss: AWS secret key",
        [secret],
    )
    azure = token(HEX, 32)
    add("en", f"AZURE_OPENAI_API_KEY={azure}", ["api_key"], "known miss: no prefix", [azure])
    for text in [
        "pip install scikit-learn, then import sklearn.",
        "Use sk-learn's GridSearchCV for the search.",
        "export OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "UUID 550e8400-e29b-41d4-a716-446655440000 is the request id.",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "Revert commit 9fceb02d0ae598e95dc970b74767f19372d61af8 please.",
        "The publishable key pk_live_51HqLyjWDarjtT1zdp7dcXYZabc is public by design.",
        "from huggingface_hub import hf_hub_download",
        "The header eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 decodes to what?",
        "Run the task-runner-2024-build-artifacts-cache-cleanup job.",
        "Tokens that start with ghp_ are personal access tokens.",
    ]:
        clean("en", text, "near miss: key-like text that is not a secret")
    clean("zh", "请把 API Key 填在 sk- 后面。", "near miss: prefix alone")
    clean("zh", "以 AKIA 开头的是 AWS 访问密钥 ID，对吗？", "near miss: prefix alone")
    clean("zh", "模型 ID 是 Qwen2.5-72B-Instruct-GPTQ-Int4。", "near miss: model name")


def private_keys() -> None:
    en = positive("en", "private_key", "PEM or PGP private key block")
    blocks = [
        f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body(6)}\n-----END RSA PRIVATE KEY-----",
        f"-----BEGIN EC PRIVATE KEY-----\n{pem_body(3)}\n-----END EC PRIVATE KEY-----",
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body(5)}\n-----END OPENSSH PRIVATE KEY-----",
        f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{pem_body(4)}\n=Ab3x\n"
        "-----END PGP PRIVATE KEY BLOCK-----",
        f"-----BEGIN PRIVATE KEY-----\n{pem_body(4)}\n-----END PRIVATE KEY-----",
        f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{pem_body(4)}\n"
        "-----END ENCRYPTED PRIVATE KEY-----",
    ]
    prompts = [
        "Why does paramiko reject this key?\n{}",
        "Convert this to PKCS#8:\n{}\nThanks!",
        "{}\nThat is my deploy key, is the format right?",
        "Decrypt my backup with this key:\n{}",
        "Here is the service account key:\n{}\nWhat is wrong with it?",
        "openssl says bad decrypt for\n{}",
    ]
    for prompt, block in zip(prompts, blocks, strict=True):
        en(prompt.format(block), [block])
    truncated = f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body(3)}"
    en(f"The paste got cut off:\n{truncated}\n\nCan you still read it?", [truncated])
    dsa = f"-----BEGIN DSA PRIVATE KEY-----\r\n{pem_body(3)}\r\n-----END DSA PRIVATE KEY-----"
    en(f"Old DSA key from a Windows box:\r\n{dsa}", [dsa])
    body = pem_body(2).replace("\n", "\\n")
    escaped = f"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----"
    en(f'{{"private_key": "{escaped}", "type": "service_account"}}', [escaped])
    zh = positive("zh", "private_key", "private key block in Chinese text")
    zh_block = f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body(4)}\n-----END RSA PRIVATE KEY-----"
    zh(f"这是服务器的私钥：\n{zh_block}\n帮我转换成 PEM 格式。", [zh_block])
    ssh = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body(3)}\n-----END OPENSSH PRIVATE KEY-----"
    zh(f"登录不上去，私钥如下\n{ssh}", [ssh])
    ec = f"-----BEGIN EC PRIVATE KEY-----\n{pem_body(2)}\n-----END EC PRIVATE KEY-----"
    zh(f"证书签名用的EC私钥：{ec}，请检查。", [ec])
    public = f"-----BEGIN PUBLIC KEY-----\n{pem_body(3)}\n-----END PUBLIC KEY-----"
    clean("en", f"Is this public key valid?\n{public}", "near miss: public key")
    cert = f"-----BEGIN CERTIFICATE-----\n{pem_body(5)}\n-----END CERTIFICATE-----"
    clean("en", f"Decode this certificate:\n{cert}", "near miss: certificate")
    clean(
        "en",
        f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{token(B64, 60)} alice@laptop",
        "near miss: SSH public key",
    )
    clean("en", "How do I generate a private key with openssl genrsa?", "near miss: words")
    clean("zh", "私钥要妥善保管，不要发给别人。BEGIN 和 END 之间是什么？", "near miss: words")


def clean_prompts() -> None:
    for text in [
        "Summarise the attached report on quarterly revenue in three bullet points.",
        "Write a haiku about autumn leaves falling on a quiet river.",
        "Explain the difference between a process and a thread.",
        "What is 17% of 2,340? Show the steps.",
        "Translate 'the meeting is postponed to next Monday' into French.",
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nMake it iterative.",
        "Our Q3 revenue was $4.2M, up 18% from Q2; churn fell to 2.1%.",
        "List five tips for a job interview at a software company.",
        "SELECT id, total FROM orders WHERE created_at > '2024-01-01' LIMIT 100;",
        "The train leaves at 08:45 from platform 9 and arrives at 12:10.",
        "Refactor this: for i in range(10): print(i * 3.14159)",
        "Give me a recipe for banana bread that uses 250 g of flour.",
        "Kubernetes pod keeps restarting with exit code 137, what does it mean?",
        "Compare PostgreSQL 16 and MySQL 8.0 for an analytics workload.",
        "The invoice total is 1,299.00 EUR including 19% VAT.",
        "Rewrite this sentence to sound more formal: gonna be late, sorry.",
        "Why is the sky blue? Answer for a ten-year-old.",
        "Sort [5, 3, 9, 1, 7] with merge sort and explain each step.",
        "HTTP 429 means too many requests; how should a client back off?",
        "Plan a 3-day trip to Kyoto with a budget of 1500 dollars.",
    ]:
        clean("en", text, "ordinary prompt")
    for text in [
        "请帮我总结这份季度报告的要点，分三条列出。",
        "写一首关于秋天落叶的五言绝句。",
        "解释一下进程和线程的区别。",
        "2340 的 17% 是多少？请写出计算步骤。",
        "把“会议推迟到下周一”翻译成英文。",
        "我们第三季度营收 4.2 亿元，同比增长 18%，请写一段新闻稿。",
        "列出五条软件公司面试的建议。",
        "北京到上海的高铁大约需要 4 小时 28 分钟，票价 553 元。",
        "请优化这段 SQL：SELECT * FROM users WHERE age > 30 ORDER BY id;",
        "帮我制定一个为期三天的杭州旅游计划，预算 3000 元。",
        "为什么天空是蓝色的？请用小学生能懂的话解释。",
        "Kubernetes 的 Pod 一直重启，退出码 137 是什么意思？",
        "比较一下 PostgreSQL 16 和 MySQL 8.0 在分析场景下的表现。",
        "发票金额 1,299.00 元，含税 13%。",
        "用 Python 写一个快速排序，并分析时间复杂度 O(n log n)。",
        "今天气温 26 摄氏度，湿度 65%，适合跑步吗？",
        "请把这段话改得更正式一些：我可能会晚到一会儿。",
        "第 3 章第 2 节讲的是什么内容？",
        "2024年3月15日的会议纪要请整理成表格。",
        "推荐几本适合初学者的机器学习书籍。",
    ]:
        clean("zh", text, "ordinary prompt")


def mixed() -> None:
    visa = card("4", 16)
    cid = cn_id("440305", birth())
    add(
        "en",
        f"Customer: Jane Roe, jane.roe@example.com, (415) 555-0176, card {visa}.",
        ["email", "phone", "bank_card"],
        "several categories",
        ["jane.roe@example.com", "(415) 555-0176", visa],
    )
    add(
        "zh",
        f"客户信息：姓名 刘洋，手机 13912345678，身份证 {cid}，邮箱 liuyang@example.cn",
        ["phone", "national_id", "email"],
        "several categories",
        ["13912345678", cid, "liuyang@example.cn"],
    )
    key = "sk-" + token(ALNUM, 48)
    add(
        "en",
        f"Deploy to 10.20.30.40 with OPENAI_API_KEY={key} and notify ops@example.com",
        ["ip_address", "api_key", "email"],
        "several categories",
        ["10.20.30.40", key, "ops@example.com"],
    )
    up = card("621483", 16)
    add(
        "zh",
        f"请把 {IBANS[3]} 的款项转到银行卡 {up}，完成后短信 13600001234。",
        ["iban", "bank_card", "phone"],
        "several categories",
        [IBANS[3], up, "13600001234"],
    )
    block = f"-----BEGIN EC PRIVATE KEY-----\n{pem_body(2)}\n-----END EC PRIVATE KEY-----"
    add(
        "en",
        f"Server 192.0.2.10, root key below:\n{block}",
        ["ip_address", "private_key"],
        "several categories",
        ["192.0.2.10", block],
    )
    add(
        "en",
        'tool call: {"to": "+1 646 555 0140", "body": "SSN 536-22-8726"}',
        ["phone", "national_id"],
        "JSON text",
        ["+1 646 555 0140", "536-22-8726"],
    )


def main() -> None:
    for part in (
        emails,
        phones,
        national_ids,
        bank_cards,
        ibans,
        ip_addresses,
        api_keys,
        private_keys,
        clean_prompts,
        mixed,
    ):
        part()
    with OUT.open("w", encoding="utf-8") as fh:
        for entry in ENTRIES:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"wrote {len(ENTRIES)} prompts to {OUT}")


if __name__ == "__main__":
    main()
