"""Every label of the interface in English and Chinese. Gradio picks the browser's language; the
Settings panel in the footer switches it."""

from __future__ import annotations

TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Multimodal assistant",
        "language_hint": "The language follows your browser; switch it under Settings at the bottom of the page.",
        "tab_chat": "Chat",
        "tab_kb": "Knowledge base",
        "chat_label": "Chat",
        "chat_placeholder": "Ask about an image, or your documents…",
        "settings": "Settings",
        "temperature": "Temperature",
        "max_tokens": "Max new tokens",
        "num_sources": "Number of sources",
        "use_kb": "Use the knowledge base",
        "strict": "Strict grounding (answer only from documents)",
        "sources": "Sources",
        "examples": "Examples",
        "add_documents": "Add documents",
        "add_button": "Add to knowledge base",
        "documents": "Documents",
        "document": "Document",
        "delete": "Delete",
        "search": "Search",
        "search_text": "Text",
        "search_image": "Image",
        "results": "Results",
        "hits": "Hits",
        "col_document": "Document",
        "col_kind": "Kind",
                "conversations": "Conversations",
        "new_conversation": "New conversation",
        "conversation_title": "Title",
        "rename": "Rename",
        "delete_conversation": "Delete conversation",
        "send": "Send",
        "stop": "Stop",
        "knowledge_base": "Knowledge base",
        "kb_name": "Name (new, or the new name)",
        "kb_create": "New knowledge base",
        "kb_rename": "Rename",
        "kb_delete": "Delete knowledge base",
        "kb_delete_confirm": "Yes, delete it and all its documents",
        "cancel": "Cancel",
        "kb_used": "Search in",
        "filter": "Filter by name",
        "filter_placeholder": "Part of a file name",
        "search_placeholder": "Words to find; press Enter",
        "col_extent": "Pages or passages",
        "col_size": "Size",
        "col_added": "Added",
    },
    "zh": {
        "title": "多模态助手",
        "language_hint": "界面语言跟随浏览器；可在页面底部的“设置”中切换。",
        "tab_chat": "对话",
        "tab_kb": "知识库",
        "chat_label": "对话",
        "chat_placeholder": "询问图片或您的文档…",
        "settings": "设置",
        "temperature": "温度",
        "max_tokens": "最大生成长度",
        "num_sources": "资料条数",
        "use_kb": "使用知识库",
        "strict": "严格依据模式（只根据文档回答）",
        "sources": "资料来源",
        "examples": "示例",
        "add_documents": "添加文档",
        "add_button": "加入知识库",
        "documents": "文档",
        "document": "文档",
        "delete": "删除",
        "search": "检索",
        "search_text": "文本",
        "search_image": "图片",
        "results": "结果数",
        "hits": "命中",
        "col_document": "文档",
        "col_kind": "类型",
                "conversations": "会话",
        "new_conversation": "新会话",
        "conversation_title": "标题",
        "rename": "重命名",
        "delete_conversation": "删除会话",
        "send": "发送",
        "stop": "停止",
        "knowledge_base": "知识库",
        "kb_name": "名称（新建或重命名）",
        "kb_create": "新建知识库",
        "kb_rename": "重命名",
        "kb_delete": "删除知识库",
        "kb_delete_confirm": "确认删除该知识库及其全部文档",
        "cancel": "取消",
        "kb_used": "检索范围",
        "filter": "按名称筛选",
        "filter_placeholder": "文件名的一部分",
        "search_placeholder": "要查找的词语；按回车检索",
        "col_extent": "页数或段落数",
        "col_size": "大小",
        "col_added": "添加时间",
    },
}


# What the server writes (reports, notices, status): in the browser's language, from its Accept-Language.
# Errors raised deeper in the product keep their English detail.
SERVER: dict[str, dict[str, str]] = {
    "en": {
        "loading": "The model is still loading; your answer will start when it is ready.",
        "stopped": "Stopped before the answer was complete.",
        "choose_files": "Choose one or more files first.",
        "choose_document": "Choose a document to delete.",
        "deleted_document": "Deleted {name} ({chunks} passages).",
        "ask_delete_document": "Delete **{name}** from this knowledge base?",
        "search_empty": "Type words to search for, or add an image.",
        "no_hits": "Nothing found.",
        "created": "Created {title}.",
        "renamed": "Renamed to {title}.",
        "ask_delete_base": "Delete **{title}** and {what}? This cannot be undone.",
        "its_documents": "its {count} documents",
        "its_document": "its document",
        "deleted_base": "Deleted {title} and its documents.",
        "shared_readonly": "The shared library: everyone can search it and ask about it; an administrator adds "
                           "and deletes its documents.",
        "shared_admin": "The shared library: what you add here every user can read.",
        "guest": "Guest · your documents and conversations are private and deleted after {minutes} minutes unused",
        "sign_out": "Sign out",
        "files_in_kb": "{ok} of {total} files in the knowledge base.",
        "added": "added", "replaced": "replaced", "unchanged": "unchanged", "failed": "failed",
        "passages": "passages", "pages": "pages", "passage": "passage", "page": "page",
        "ready": "ready", "loading_state": "loading", "idle": "waiting", "colon": ": ",
        "model": "model", "knowledge base": "knowledge base", "shared library": "shared library",
        "embedders": "embedders", "parse workers": "parse workers",
        "Text": "Text", "Markdown": "Markdown", "PDF": "PDF", "Web page": "Web page", "Word": "Word",
        "Image": "Image",
    },
    "zh": {
        "loading": "模型仍在加载；加载完成后将开始回答。",
        "stopped": "回答未完成即已停止。",
        "choose_files": "请先选择一个或多个文件。",
        "choose_document": "请选择要删除的文档。",
        "deleted_document": "已删除 {name}（{chunks} 个段落）。",
        "ask_delete_document": "要从此知识库删除 **{name}** 吗？",
        "search_empty": "请输入要查找的词语，或添加一张图片。",
        "no_hits": "没有找到结果。",
        "created": "已创建 {title}。",
        "renamed": "已重命名为 {title}。",
        "ask_delete_base": "要删除 **{title}** 及{what}吗？此操作无法撤销。",
        "its_documents": "其中的 {count} 个文档",
        "its_document": "其中的文档",
        "deleted_base": "已删除 {title} 及其文档。",
        "shared_readonly": "共享资料库：所有人都可以检索和提问；文档由管理员添加和删除。",
        "shared_admin": "共享资料库：您在此添加的内容所有用户都可以读取。",
        "guest": "访客 · 您的文档和会话仅自己可见，闲置 {minutes} 分钟后删除",
        "sign_out": "退出登录",
        "files_in_kb": "{total} 个文件中有 {ok} 个已在知识库中。",
        "added": "已添加", "replaced": "已替换", "unchanged": "未变化", "failed": "失败",
        "passages": "个段落", "pages": "页", "passage": "个段落", "page": "页",
        "ready": "就绪", "loading_state": "加载中", "idle": "等待中", "colon": "：",
        "model": "模型", "knowledge base": "知识库", "shared library": "共享资料库",
        "embedders": "嵌入模型", "parse workers": "解析进程",
        "Text": "文本", "Markdown": "Markdown", "PDF": "PDF", "Web page": "网页", "Word": "Word 文档",
        "Image": "图片",
        "My documents": "我的文档", "Shared library": "共享资料库",
    },
}


def language(request) -> str:
    """``zh`` when the browser's first choice is Chinese (its Accept-Language header), else ``en``."""
    headers = getattr(request, "headers", None) or {}
    first = (headers.get("accept-language") or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def say(lang: str, key: str, **values) -> str:
    """A server message in ``lang`` (English when it has no translation)."""
    text = SERVER.get(lang, {}).get(key) or SERVER["en"].get(key, key)
    return text.format(**values) if values else text


def words(lang: str):
    """``say`` bound to one language, for the render helpers."""
    return lambda key, **values: say(lang, key, **values)


def column_headers(lang: str) -> list[str]:
    keys = ("col_document", "col_kind", "col_extent", "col_size", "col_added")
    return [TRANSLATIONS.get(lang, TRANSLATIONS["en"])[k] for k in keys]


def make_i18n():
    import gradio as gr

    return gr.I18n(**TRANSLATIONS)
