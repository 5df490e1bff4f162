"""Write the labelled set: English and Chinese passages, images with text, a PDF with a figure and a
scanned page, an HTML page with an image, a Word file; and eval.json with queries per direction, expected
answers for the text questions, and unanswerable questions (no relevant file) for the abstention table.

    python benchmarks/eval_data.py DIR && python -m assistant eval DIR/eval.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.documents import make_docx, make_html, make_pdf, text_image  # noqa: E402

EN = {
    "budget.md": "# Hospital budget\n\nThe board approved a budget of 42 million euros for the new hospital wing, "
                 "to be built over three years.",
    "vaccines.md": "# Vaccination schedule\n\nChildren receive the measles vaccine at twelve months and a booster "
                   "dose at four years of age.",
    "parking.txt": "Staff parking is in garage B. Visitors park in the open lot next to the main entrance.",
    "security.md": "# Passwords\n\nPasswords must be changed every ninety days and may not be reused.",
    "cafeteria.txt": "The cafeteria is open from seven in the morning until eight in the evening, weekends included.",
    "fire.md": "# Fire safety\n\nIn case of fire, use the stairs, never the elevators, and gather at the assembly "
               "point in the car park.",
    "leave.txt": "Employees are entitled to twenty-five days of paid annual leave, plus public holidays.",
    "mri.md": "# MRI preparation\n\nPatients must remove all metal objects and fast for four hours before the scan.",
}
ZH = {
    "diabetes-zh.md": "# 糖尿病饮食\n\n糖尿病患者应减少精制糖的摄入，多吃蔬菜和全谷物，并且每天规律监测血糖。",
    "visiting-zh.txt": "医院探视时间为每天下午两点到晚上八点，每位病人最多同时接待两名访客。",
    "discharge-zh.md": "# 出院须知\n\n出院后一周内请避免剧烈运动，按时服药，并在两周后回门诊复查。",
    "invoice-zh.txt": "发票总额为四千二百元人民币，请在三月一日之前通过银行转账付款。",
    "allergy-zh.md": "# 过敏\n\n对青霉素过敏的病人必须在病历首页醒目标注，并告知主治医生。",
}
IMAGES = {  # images whose content is text: found through OCR
    "sign-exit.png": "EMERGENCY EXIT\nKeep this door clear",
    "label-dose.png": "Amoxicillin 500 mg\nTake twice daily",
    "whiteboard-zh.png": "今日手术安排\n三号手术室 上午九点",
    "bp-reading.png": "Blood pressure 120/80\nPulse 72",
}
QUERY_IMAGES = {  # other pictures of the same texts, for image queries
    "q-exit.png": "EMERGENCY EXIT\nKeep door clear",
    "q-dose.png": "Amoxicillin 500 mg",
    "q-whiteboard-zh.png": "今日手术安排",
    "q-fire-sign.png": "FIRE: use the stairs",
    "q-parking-sign.png": "Visitor parking",
    "q-visiting-zh.png": "探视时间",
}


def write(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in {**EN, **ZH}.items():
        (docs / name).write_text(text, encoding="utf-8")
    for name, text in IMAGES.items():
        text_image(text, docs / name)
    figure = text_image("Quarterly revenue\nQ1 10  Q2 12  Q3 15", root / "figure.png", size=(700, 200))
    make_pdf(docs / "annual-report.pdf", ["Annual report. Revenue grew every quarter of the year.",
                                         "Outlook: the company plans two new clinics next year."],
             figure=root / "figure.png", scanned="Signed by the chief financial officer")
    (docs / "org-chart.png").write_bytes((root / "figure.png").read_bytes())
    make_html(docs / "intranet.html", "Intranet news", {"Canteen": "The canteen menu changes every Monday.",
                                                       "IT": "The new laptops arrive in May."},
              image="org-chart.png", alt="Organisation chart of the nursing department")
    make_docx(docs / "handbook.docx", "Nurse handbook",
              {"Shifts": "Night shifts start at ten in the evening.", "Uniform": "Uniforms are washed by the hospital."})
    queries_dir = root / "queries"
    for name, text in QUERY_IMAGES.items():
        text_image(text, queries_dir / name, size=(700, 160), colour="#f4f1e8")
    spec = {"documents": [f"docs/{p.name}" for p in sorted(docs.iterdir())], "queries": queries()}
    out = root / "eval.json"
    out.write_text(json.dumps(spec, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def q(direction, language, relevant, text="", image=None, answer=None):
    query = {"direction": direction, "language": language, "text": text, "image": image, "relevant": relevant}
    return {**query, "answer": answer} if answer else query


def queries() -> list[dict]:
    t2t, t2i, i2i, i2t = "text→text", "text→image", "image→image", "image→text"
    return [
        q(t2t, "en", ["budget.md"], "How much money was approved for the hospital extension?", answer="42 million"),
        q(t2t, "en", ["vaccines.md"], "When do kids get the measles booster?", answer="four years"),
        q(t2t, "en", ["parking.txt"], "Where should visitors leave their car?", answer="open lot"),
        q(t2t, "en", ["security.md"], "How often do I need a new password?", answer="ninety days"),
        q(t2t, "en", ["cafeteria.txt"], "What are the canteen opening hours?", answer="seven in the morning"),
        q(t2t, "en", ["fire.md"], "What to do if the building is burning?", answer="stairs"),
        q(t2t, "en", ["leave.txt"], "How many vacation days do employees get?", answer="twenty-five days"),
        q(t2t, "en", ["mri.md"], "How should I prepare for a magnetic resonance scan?", answer="metal objects"),
        q(t2t, "en", ["annual-report.pdf"], "Did revenue grow this year?"),
        q(t2t, "en", ["annual-report.pdf"], "Who signed the annual report?"),
        q(t2t, "en", ["handbook.docx"], "When does the night shift begin?"),
        q(t2t, "en", ["intranet.html"], "When will the new laptops be delivered?"),
        q(t2t, "zh", ["diabetes-zh.md"], "糖尿病病人应该怎么吃？", answer="全谷物"),
        q(t2t, "zh", ["visiting-zh.txt"], "探视时间是几点到几点？", answer="下午两点到晚上八点"),
        q(t2t, "zh", ["discharge-zh.md"], "出院以后什么时候复查？", answer="两周后"),
        q(t2t, "zh", ["invoice-zh.txt"], "发票金额是多少？", answer="四千二百元"),
        q(t2t, "zh", ["allergy-zh.md"], "青霉素过敏要注意什么？"),
        q(t2i, "en", ["sign-exit.png"], "emergency exit sign"),
        q(t2i, "en", ["label-dose.png"], "amoxicillin dosage label"),
        q(t2i, "en", ["bp-reading.png"], "blood pressure reading"),
        q(t2i, "en", ["intranet.html"], "organisation chart of the nursing department"),
        q(t2i, "en", ["annual-report.pdf", "org-chart.png"], "quarterly revenue chart"),
        q(t2i, "zh", ["whiteboard-zh.png"], "手术安排白板"),
        q(i2i, "en", ["sign-exit.png"], image="queries/q-exit.png"),
        q(i2i, "en", ["label-dose.png"], image="queries/q-dose.png"),
        q(i2i, "zh", ["whiteboard-zh.png"], image="queries/q-whiteboard-zh.png"),
        q(i2t, "en", ["fire.md"], image="queries/q-fire-sign.png"),
        q(i2t, "en", ["parking.txt"], image="queries/q-parking-sign.png"),
        q(i2t, "zh", ["visiting-zh.txt"], image="queries/q-visiting-zh.png"),
        # unanswerable: nothing in the documents says (for the abstention table)
        q(t2t, "en", [], "What is the capital of Peru?"),
        q(t2t, "en", [], "Who won the football world cup in 1998?"),
        q(t2t, "en", [], "How do I bake sourdough bread?"),
        q(t2t, "en", [], "What is the boiling point of ethanol?"),
        q(t2t, "en", [], "Recommend a science fiction novel."),
        q(t2t, "zh", [], "长城有多长？"),
        q(t2t, "zh", [], "怎么做红烧肉？"),
        q(t2t, "zh", [], "明天上海的天气怎么样？"),
    ]


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "eval-data")))
