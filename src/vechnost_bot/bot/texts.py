"""Everything the bot says, in Russian, English and Czech.

Each language is written in its own words, not translated line by line. Keys are
the same in every language (a test checks it); ``{placeholders}`` are filled with
:func:`t`.
"""

from __future__ import annotations

from typing import Final

from vechnost_bot.storage.records import ContentType, Language, ThemeId

__all__ = [
    "COMMANDS",
    "DEFAULT_LANGUAGE",
    "LANGUAGE_NAMES",
    "TEXTS",
    "content_name",
    "language_from_code",
    "level_name",
    "t",
    "theme_name",
]

DEFAULT_LANGUAGE: Final[Language] = "en"

LANGUAGE_NAMES: Final[dict[Language, str]] = {
    "ru": "🇷🇺 Русский",
    "en": "🇬🇧 English",
    "cs": "🇨🇿 Čeština",
}

_THEME_ICONS: Final[dict[ThemeId, str]] = {
    "acquaintance": "💬",
    "couples": "❤️",
    "provocation": "🔥",
    "sex": "🔞",
}

TEXTS: Final[dict[Language, dict[str, str]]] = {
    "en": {
        "welcome": (
            "Hi, {name}! Welcome to Vechnost 🌙\n\n"
            "It's a card game for conversations that matter: with a friend, a date, "
            "or the person you love. Pick a theme, draw a card, and take turns answering "
            "honestly. There are no wrong answers, only curiosity.\n\n"
            "Where shall we start?"
        ),
        "welcome_back": "Welcome back, {name}! Pick up where you left off, or choose a new theme.",
        "help": (
            "How to play Vechnost:\n\n"
            "1. Choose a theme: Acquaintance, For Couples, Provocation or Sex (18+).\n"
            "2. Choose a level: the higher it is, the deeper the questions.\n"
            "3. Tap “Next card” and answer in turn. Take your time and listen.\n\n"
            "Cards never repeat until you've been through the whole deck; then you can "
            "shuffle it again. Your progress is saved, even if you switch language.\n\n"
            "/start: main menu\n/language: change language\n"
            "/reset: start over\n/help: this note"
        ),
        "choose_language": "Which language shall we play in?",
        "language_set": "Great, we'll play in English from now on.",
        "choose_theme": "Choose a theme:",
        "choose_level": "{theme}: choose a level. Level 1 is a gentle start, Level 3 goes deep.",
        "choose_content": "{theme}: questions to talk about, or tasks to do together?",
        "deck_intro": (
            "{deck}\nCards drawn: {drawn}/{total}.\n\nTap “Next card” whenever you're ready."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "That's the whole deck: all {total} cards! 🎉 Thank you for every honest answer.\n\n"
            "Shuffle the deck and go again, or pick another theme."
        ),
        "reshuffled": "The deck is shuffled. Here we go again!",
        "adult_prompt": (
            "The Sex theme has explicit questions and tasks meant for adults only.\n\n"
            "Please confirm that everyone playing is 18 or older and happy to play it."
        ),
        "adult_declined": "No problem at all. Let's choose something else.",
        "reset_done": "Done! We're starting over; your language stays the same.",
        "slow_down": (
            "Whoa, that's a lot at once! 🙂 Please slow down a little; I'll be right here."
        ),
        "unknown_input": (
            "I only understand the buttons and commands, so let's carry on from here."
        ),
        "unknown_command": "I don't know that command. Try /help.",
        "unexpected_media": (
            "That's lovely, but I can only play with the buttons below. Let's continue."
        ),
        "too_long": (
            "That's a long message! Share it with your partner out loud; "
            "I'll keep the cards coming."
        ),
        "stale": "That button is from an earlier step. Here's where you are now:",
        "error": "Sorry, something went wrong on my side. Let's try again from here.",
        "btn_next": "Next card ▶️",
        "btn_back": "⬅️ Back",
        "btn_menu": "🏠 Themes",
        "btn_reshuffle": "🔀 Shuffle again",
        "btn_adult_yes": "✅ Yes, we are 18+",
        "btn_adult_no": "↩️ No, go back",
        "btn_help": "❓ How to play",
        "btn_language": "🌐 Language",
        "theme_acquaintance": "Acquaintance",
        "theme_couples": "For Couples",
        "theme_provocation": "Provocation",
        "theme_sex": "Sex",
        "level": "Level {level}",
        "content_questions": "Questions",
        "content_tasks": "Tasks",
        "cmd_start": "Main menu",
        "cmd_help": "How to play",
        "cmd_reset": "Start over",
        "cmd_language": "Change language",
    },
    "ru": {
        "welcome": (
            "Привет, {name}! Это «Вечность» 🌙\n\n"
            "Карточная игра для настоящих разговоров: с другом, на свидании или с самым "
            "близким человеком. Выберите тему, тяните карту и отвечайте по очереди, честно "
            "и без спешки. Неправильных ответов здесь нет, есть только интерес друг к другу.\n\n"
            "С чего начнём?"
        ),
        "welcome_back": "С возвращением, {name}! Продолжим с того же места или выберем новую тему?",
        "help": (
            "Как играть в «Вечность»:\n\n"
            "1. Выберите тему: Знакомство, Для пар, Провокация или Секс (18+).\n"
            "2. Выберите уровень: чем он выше, тем глубже вопросы.\n"
            "3. Нажимайте «Следующая карта» и отвечайте по очереди. Не торопитесь, слушайте "
            "друг друга.\n\n"
            "Карты не повторяются, пока вы не пройдёте всю колоду, а потом её можно "
            "перемешать заново. Прогресс сохраняется, даже если сменить язык.\n\n"
            "/start — главное меню\n/language — сменить язык\n"
            "/reset — начать игру заново\n/help — эта подсказка"
        ),
        "choose_language": "На каком языке будем играть?",
        "language_set": "Отлично, теперь играем на русском.",
        "choose_theme": "Выберите тему:",
        "choose_level": (
            "{theme}: выберите уровень. Первый — лёгкое начало, третий — самое сокровенное."
        ),
        "choose_content": "{theme}: вопросы для разговора или задания, которые сделаете вместе?",
        "deck_intro": (
            "{deck}\n"
            "Вытянуто карт: {drawn}/{total}.\n\nНажмите «Следующая карта», когда будете готовы."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "Вот и вся колода — все {total} карт! 🎉 Спасибо за каждый честный ответ.\n\n"
            "Можно перемешать колоду и сыграть ещё раз или выбрать другую тему."
        ),
        "reshuffled": "Колода перемешана. Поехали снова!",
        "adult_prompt": (
            "В теме «Секс» откровенные вопросы и задания — только для взрослых.\n\n"
            "Подтвердите, пожалуйста, что всем играющим есть 18 и все согласны на такую игру."
        ),
        "adult_declined": "Конечно, без проблем. Давайте выберем что-нибудь другое.",
        "reset_done": "Готово: игра начинается заново. Язык остался прежним.",
        "slow_down": "Ого, как быстро! 🙂 Давайте чуть помедленнее — я никуда не денусь.",
        "unknown_input": "Я понимаю только кнопки и команды, так что продолжим отсюда.",
        "unknown_command": "Такой команды я не знаю. Загляните в /help.",
        "unexpected_media": "Как мило! Но играть я умею только кнопками ниже. Продолжим?",
        "too_long": (
            "Какое длинное сообщение! Лучше расскажите это друг другу вслух, "
            "а я пока приготовлю следующую карту."
        ),
        "stale": "Эта кнопка осталась от прошлого шага. Вот где вы сейчас:",
        "error": "Ой, у меня что-то пошло не так. Давайте попробуем ещё раз отсюда.",
        "btn_next": "Следующая карта ▶️",
        "btn_back": "⬅️ Назад",
        "btn_menu": "🏠 Темы",
        "btn_reshuffle": "🔀 Перемешать заново",
        "btn_adult_yes": "✅ Да, нам есть 18",
        "btn_adult_no": "↩️ Нет, вернуться",
        "btn_help": "❓ Как играть",
        "btn_language": "🌐 Язык",
        "theme_acquaintance": "Знакомство",
        "theme_couples": "Для пар",
        "theme_provocation": "Провокация",
        "theme_sex": "Секс",
        "level": "Уровень {level}",
        "content_questions": "Вопросы",
        "content_tasks": "Задания",
        "cmd_start": "Главное меню",
        "cmd_help": "Как играть",
        "cmd_reset": "Начать игру заново",
        "cmd_language": "Сменить язык",
    },
    "cs": {
        "welcome": (
            "Ahoj, {name}! Vítej ve hře Vechnost 🌙\n\n"
            "Je to karetní hra pro rozhovory, na kterých záleží: s kamarádem, na rande "
            "nebo s někým, koho milujete. Vyberte si téma, vytáhněte kartu a odpovídejte "
            "střídavě a upřímně. Špatné odpovědi tu nejsou, jen zvědavost.\n\n"
            "Čím začneme?"
        ),
        "welcome_back": (
            "Vítej zpátky, {name}! Budeme pokračovat tam, kde jsme skončili, "
            "nebo si vybereme nové téma?"
        ),
        "help": (
            "Jak hrát Vechnost:\n\n"
            "1. Vyberte téma: Seznámení, Pro páry, Provokace nebo Sex (18+).\n"
            "2. Vyberte úroveň: čím vyšší, tím hlubší otázky.\n"
            "3. Klepněte na „Další karta“ a odpovídejte střídavě. "
            "Nespěchejte a naslouchejte si.\n\n"
            "Karty se neopakují, dokud neprojdete celý balíček; pak ho můžete znovu zamíchat. "
            "Postup se ukládá, i když změníte jazyk.\n\n"
            "/start – hlavní nabídka\n/language – změnit jazyk\n"
            "/reset – začít hru znovu\n/help – tahle nápověda"
        ),
        "choose_language": "V jakém jazyce budeme hrát?",
        "language_set": "Skvěle, odteď hrajeme česky.",
        "choose_theme": "Vyberte téma:",
        "choose_level": (
            "{theme}: vyberte úroveň. Úroveň 1 je jemný začátek, úroveň 3 jde do hloubky."
        ),
        "choose_content": "{theme}: otázky k povídání, nebo úkoly, které zvládnete spolu?",
        "deck_intro": (
            "{deck}\n"
            "Vytaženo karet: {drawn}/{total}.\n\nAž budete připraveni, klepněte na „Další karta“."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "A to je celý balíček – všech {total} karet! 🎉 Díky za každou upřímnou odpověď.\n\n"
            "Můžete balíček zamíchat a hrát znovu, nebo si vybrat jiné téma."
        ),
        "reshuffled": "Balíček je zamíchaný. Jedeme znovu!",
        "adult_prompt": (
            "Téma Sex obsahuje explicitní otázky a úkoly, určené jen pro dospělé.\n\n"
            "Potvrďte prosím, že je všem hráčům alespoň 18 let a že s takovou hrou souhlasí."
        ),
        "adult_declined": "Vůbec nevadí. Vyberme si něco jiného.",
        "reset_done": "Hotovo: hra začíná znovu. Jazyk zůstává stejný.",
        "slow_down": "Páni, to je najednou hodně! 🙂 Trochu zpomalte, počkám na vás.",
        "unknown_input": "Rozumím jen tlačítkům a příkazům, tak pokračujme odsud.",
        "unknown_command": "Tenhle příkaz neznám. Zkuste /help.",
        "unexpected_media": "To je milé! Hrát ale umím jen s tlačítky níže. Pokračujeme?",
        "too_long": (
            "To je ale dlouhá zpráva! Řekněte si to raději nahlas, "
            "já mezitím připravím další kartu."
        ),
        "stale": "Tohle tlačítko je z dřívějšího kroku. Tady právě jste:",
        "error": "Promiňte, něco se mi pokazilo. Zkusme to znovu odsud.",
        "btn_next": "Další karta ▶️",
        "btn_back": "⬅️ Zpět",
        "btn_menu": "🏠 Témata",
        "btn_reshuffle": "🔀 Zamíchat znovu",
        "btn_adult_yes": "✅ Ano, je nám 18+",
        "btn_adult_no": "↩️ Ne, zpět",
        "btn_help": "❓ Jak hrát",
        "btn_language": "🌐 Jazyk",
        "theme_acquaintance": "Seznámení",
        "theme_couples": "Pro páry",
        "theme_provocation": "Provokace",
        "theme_sex": "Sex",
        "level": "Úroveň {level}",
        "content_questions": "Otázky",
        "content_tasks": "Úkoly",
        "cmd_start": "Hlavní nabídka",
        "cmd_help": "Jak hrát",
        "cmd_reset": "Začít hru znovu",
        "cmd_language": "Změnit jazyk",
    },
}

COMMANDS: Final[tuple[str, ...]] = ("start", "help", "language", "reset")
"""The commands registered with setMyCommands, in menu order."""


def t(language: Language | None, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when unset), with ``values`` filled in."""
    text = TEXTS[language or DEFAULT_LANGUAGE][key]
    return text.format(**values) if values else text


def theme_name(language: Language | None, theme: ThemeId, *, icon: bool = False) -> str:
    """A theme's name; with ``icon`` as on its button."""
    name = t(language, f"theme_{theme}")
    return f"{_THEME_ICONS[theme]} {name}" if icon else name


def level_name(language: Language | None, level: int) -> str:
    """``Level 2`` in the language."""
    return t(language, "level", level=level)


def content_name(language: Language | None, content: ContentType) -> str:
    """``Questions`` or ``Tasks`` in the language."""
    return t(language, f"content_{content}")


def language_from_code(code: str | None) -> Language:
    """Our language for a Telegram ``language_code``: ru, cs or (otherwise) en."""
    base = (code or "").split("-")[0].lower()
    if base in {"ru", "uk", "be", "kk"}:
        return "ru"
    if base in {"cs", "sk"}:
        return "cs"
    return "en"
