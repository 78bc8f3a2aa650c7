"""Everything the bot says, in Russian, English and Czech.

Each language is written in its own words, not translated line by line. Keys are
the same in every language (a test checks it); ``{placeholders}`` are filled with
:func:`t`.
"""

from __future__ import annotations

from typing import Final

from vechnost_bot.game.typography import bind_short_words
from vechnost_bot.storage.records import ContentType, Language, ThemeId

__all__ = [
    "CHOOSE_LANGUAGE_ANY",
    "CLIENT_LANGUAGES",
    "COMMANDS",
    "DEFAULT_LANGUAGE",
    "LANGUAGE_NAMES",
    "MENU_LANGUAGES",
    "TEXTS",
    "content_name",
    "count_cards",
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
            "It’s a card game for conversations that matter: with a friend, a date, "
            "or the person you love. Pick a theme, draw a card, and take turns answering "
            "honestly. There are no wrong answers, only curiosity.\n\n"
            "Where shall we start?"
        ),
        "welcome_back": "Welcome back, {name}! Pick up where you left off, or choose a new theme.",
        "help": (
            "How to play Vechnost:\n\n"
            "1. Tell me your two names (“Anna and Tom”): every card then says who asks and "
            "who answers, in turns. In a group, the first two people who tap are the players.\n"
            "2. Choose a theme and a level: the first card comes at once. The higher the "
            "level, the deeper the questions; after a dozen cards I’ll offer to go deeper.\n"
            "3. Under each card: ♥ Save keeps it, 🔄 Swap puts it back into the deck for "
            "another, ⏮ Previous shows the one before, 🏁 ends the game with a short summary.\n\n"
            "Cards never repeat until you’ve been through the whole deck. Apart? /room gives "
            "you a link: one game on two phones, each in your own language.\n\n"
            "/start: main menu\n/favourites: your saved cards\n/room: play on two phones\n"
            "/leave: leave the room\n/language: change language\n/reset: start over\n"
            "/help: this note"
        ),
        "choose_language": "Which language shall we play in?",
        "language_set": "Great, we’ll play in English from now on.",
        "choose_theme": "Choose a theme:",
        "choose_level": "{theme}: choose a level. Level 1 is a gentle start, Level 3 goes deep.",
        "choose_heat": "{theme}: how hot shall we play? Mild is tender, Hot is bolder.",
        "choose_content": "{theme}: questions to talk about, or tasks to do together?",
        "deck_intro": (
            "{deck}\nCards drawn: {drawn}/{total}.\n\nTap “Next card” whenever you’re ready."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "That’s the whole deck: all {cards}! 🎉 Thank you for every honest answer.\n\n"
            "Shuffle the deck and go again, or pick another theme."
        ),
        "reshuffled": "The deck is shuffled. Here we go again!",
        "adult_prompt": (
            "The Sex theme has explicit questions and tasks meant for adults only.\n\n"
            "Please confirm that everyone playing is 18 or older and happy to play it."
        ),
        "adult_declined": "No problem at all. Let’s choose something else.",
        "reset_done": "Done! We’re starting over; your language stays the same.",
        "slow_down": (
            "Whoa, that’s a lot at once! 🙂 Please slow down a little; I’ll be right here."
        ),
        "unknown_input": (
            "I only understand the buttons and commands, so let’s carry on from here."
        ),
        "unknown_command": "I don’t know that command. Try /help.",
        "unexpected_media": (
            "I can’t look at pictures, stickers or voice messages, but the game goes on with "
            "the buttons below."
        ),
        "too_long": (
            "That’s a long message! Share it with your partner out loud; "
            "I’ll keep the cards coming."
        ),
        "stale": "That button is from an earlier step. Here’s where you are now:",
        "error": "Sorry, something went wrong on my side. Let’s try again from here.",
        "btn_next": "Next card ▶️",
        "btn_back": "⬅️ Back",
        "btn_menu": "🏠 Themes",
        "btn_reshuffle": "🔀 Shuffle again",
        "btn_adult_yes": "✅ Yes, we are 18+",
        "btn_adult_no": "↩️ No, go back",
        "btn_adult_me": "✅ Yes, I’m 18+",
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
        "ask_names": (
            "Who’s playing? Send me your two names, like “Anna and Tom”, and every card "
            "will say whose turn it is. Or just choose a theme."
        ),
        "names_set": "Lovely to meet you, {first} and {second}! {first} asks first.",
        "turn_ask": "{first} asks → {second} answers",
        "turn_ask_one": "{first} asks",
        "turn_task": "{first} reads → {second} does it",
        "turn_both": "{first} answers first, then {second}",
        "next_drawer": "{name} draws the next card.",
        "not_your_turn": "It’s {name}’s turn to draw the next card.",
        "opening_caption": "{deck} · how we play",
        "closing_caption": "{deck} · the last card",
        "previous_caption": "An earlier card",
        "no_previous": "There’s no earlier card yet.",
        "pace_offer": "That’s {count} cards at this level. Ready to go a level deeper?",
        "pace_offer_last": "That’s {count} cards already. Keep going, or tap 🏁 to end the game?",
        "swapped": "That card went back into the deck. Here’s another.",
        "swap_last": "This is the only card left in the deck.",
        "swap_not_yours": "Only {name}, who drew this card, can swap it.",
        "saved": "Saved to your favourites ♥",
        "unsaved": "Removed from your favourites.",
        "summary": (
            "That’s our game. Thank you for every honest answer 🌙\n\n"
            "Cards shared: {cards}\nTime together: {minutes} min\n"
            "Saved to favourites: {saved}\nCards in all your games: {total}\n\n"
            "/favourites plays the cards you saved."
        ),
        "favourites_empty": (
            "No favourites yet. Tap “♥ Save” under a card you’d like to come back to."
        ),
        "favourite_caption": "♥ Favourite {number}/{total}",
        "both_on": "Both of you answer every card now; the other one goes first next time.",
        "both_off": "One asks, the other answers, and you take turns.",
        "reset_confirm": (
            "Start over? You can shuffle just this deck, or forget the whole game, names "
            "included. Your language and favourites stay."
        ),
        "reset_deck_done": "This deck is shuffled: all its cards are back.",
        "reset_cancelled": "Nothing changed. Let’s carry on.",
        "room_created": (
            "Your room is ready. Send this link to your partner:\n{link}\n\n"
            "When they open it, you’ll play one game on two phones: one deck, one turn, "
            "each of you in your own language."
        ),
        "room_joined": (
            "You’re in {name}’s room: one game on two phones now. "
            "/leave takes you back to your own game."
        ),
        "room_back": "Welcome back to the room! The game is where you left it.",
        "room_partner_joined": "{name} has joined your room. Choose a theme whenever you’re ready.",
        "room_full": "This room already has two players, so I can’t add you to it.",
        "room_unknown": (
            "This invite link doesn’t lead to a room any more. Ask your partner for a new "
            "one (/room)."
        ),
        "room_own": "That’s your own room’s link. Send it to your partner.",
        "room_left": (
            "You’ve left the room. Its game stays as it is, so the same link brings you "
            "back. Here’s your own game:"
        ),
        "room_partner_left": (
            "{name} has left the room. The game stays as it is; the same link brings them back."
        ),
        "not_in_room": "You’re not in a room. /room makes one for you and your partner.",
        "room_private_only": "Rooms are for two private chats. Open me privately and send /room.",
        "adult_prompt_each": (
            "The Sex theme has explicit questions and tasks meant for adults only.\n\n"
            "Each player confirms for themselves that they are 18 or older and happy to play it."
        ),
        "adult_waiting": "Thank you. The theme opens once everyone playing has confirmed.",
        "adult_first": "Please confirm that you’re 18 or older first.",
        "btn_save": "♥ Save",
        "btn_unsave": "💔 Remove",
        "btn_swap": "🔄 Swap",
        "btn_previous": "⏮ Previous",
        "btn_end": "🏁 End the game",
        "btn_deeper": "⤵️ Deeper: {level}",
        "btn_next_level": "⤵️ {level}",
        "btn_keep": "▶️ Back to the game",
        "btn_next_favourite": "Next favourite ▶️",
        "btn_both_on": "👥 Both answer: on",
        "btn_both_off": "👥 Both answer: off",
        "btn_reset_deck": "🔀 Shuffle this deck",
        "btn_reset_all": "🧹 Forget the whole game",
        "btn_cancel": "↩️ Cancel",
        "btn_leave": "🚪 Leave the room",
        "btn_room": "👫 Play apart",
        "cmd_favourites": "Play your saved cards",
        "cmd_room": "Play together on two phones",
        "cmd_leave": "Leave the room",
        "description": (
            "Vechnost is a card game for conversations that matter: with a friend, a date "
            "or the person you love. Four themes, deeper levels, one card at a time, in "
            "turns. Play on one phone, in a group, or on two phones when you’re apart."
        ),
        "short_description": "A card game for honest conversations, for two.",
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
            "1. Напишите мне два имени («Аня и Тёма»): на каждой карте будет видно, кто "
            "спрашивает и кто отвечает, по очереди. В группе играют первые двое, кто нажмёт "
            "кнопку.\n"
            "2. Выберите тему и уровень — первая карта придёт сразу. Чем выше уровень, тем "
            "глубже вопросы; примерно после дюжины карт я предложу пойти глубже.\n"
            "3. Под каждой картой: ♥ Сохранить — в избранное, 🔄 Другая карта — вернуть "
            "эту в колоду, ⏮ Прошлая — показать предыдущую, 🏁 — закончить игру с "
            "коротким итогом.\n\n"
            "Карты не повторяются, пока вы не пройдёте всю колоду. Вы далеко друг от друга? "
            "/room даст ссылку: одна игра на двух телефонах, у каждого свой язык.\n\n"
            "/start — главное меню\n/favourites — сохранённые карты\n"
            "/room — игра на двух телефонах\n/leave — выйти из комнаты\n/language — сменить язык\n"
            "/reset — начать заново\n/help — эта подсказка"
        ),
        "choose_language": "На каком языке будем играть?",
        "language_set": "Отлично, теперь играем на русском.",
        "choose_theme": "Выберите тему:",
        "choose_level": (
            "{theme}: выберите уровень. Первый — лёгкое начало, третий — самое сокровенное."
        ),
        "choose_heat": (
            "{theme}: насколько горячо играем? «Нежно» — мягкое начало, «Горячо» — смелее."
        ),
        "choose_content": "{theme}: вопросы для разговора или задания, которые сделаете вместе?",
        "deck_intro": (
            "{deck}\n"
            "Вытянуто карт: {drawn}/{total}.\n\nНажмите «Следующая карта», когда будете готовы."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "Вот и вся колода: {cards}, все до одной! 🎉 Спасибо за каждый честный ответ.\n\n"
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
        "unexpected_media": (
            "Картинки, стикеры и голосовые я не смотрю и не слушаю, но игра продолжается: "
            "кнопки ниже."
        ),
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
        "btn_adult_me": "✅ Да, мне есть 18",
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
        "ask_names": (
            "Кто играет? Напишите мне два имени, например «Аня и Тёма», и на каждой карте "
            "будет видно, чья очередь. Или просто выберите тему."
        ),
        "names_set": "Приятно познакомиться, {first} и {second}! Первый вопрос задаёт {first}.",
        "turn_ask": "Спрашивает {first} → отвечает {second}",
        "turn_ask_one": "Спрашивает {first}",
        "turn_task": "Читает {first} → выполняет {second}",
        "turn_both": "Сначала отвечает {first}, потом {second}",
        "next_drawer": "Следующую карту тянет {name}.",
        "not_your_turn": "Следующую карту тянет {name}.",
        "opening_caption": "{deck} · как играем",
        "closing_caption": "{deck} · последняя карта",
        "previous_caption": "Одна из прошлых карт",
        "no_previous": "Прошлых карт пока нет.",
        "pace_offer": "Карт на этом уровне: {count}. Готовы пойти глубже?",
        "pace_offer_last": "Карт уже {count}. Продолжим или завершим игру кнопкой 🏁?",
        "swapped": "Эта карта вернулась в колоду. Вот другая.",
        "swap_last": "Это последняя карта в колоде.",
        "swap_not_yours": "Поменять эту карту может только {name}.",
        "saved": "Сохранено в избранное ♥",
        "unsaved": "Убрано из избранного.",
        "summary": (
            "Вот и вся игра. Спасибо за каждый честный ответ 🌙\n\n"
            "Карт сыграно: {cards}\nВремя вместе: {minutes} мин\n"
            "Сохранено в избранное: {saved}\nКарт во всех ваших играх: {total}\n\n"
            "/favourites — сыграть сохранённые карты."
        ),
        "favourites_empty": (
            "В избранном пока пусто. Нажмите «♥ Сохранить» под картой, к которой захотите "
            "вернуться."
        ),
        "favourite_caption": "♥ Избранное {number}/{total}",
        "both_on": "Теперь на каждую карту отвечаете оба, и в следующий раз первым будет другой.",
        "both_off": "Один спрашивает, другой отвечает, и так по очереди.",
        "reset_confirm": (
            "Начать заново? Можно перемешать только эту колоду или забыть всю игру вместе "
            "с именами. Язык и избранное останутся."
        ),
        "reset_deck_done": "Колода перемешана: все её карты снова в игре.",
        "reset_cancelled": "Ничего не изменилось. Играем дальше.",
        "room_created": (
            "Комната готова. Отправьте партнёру эту ссылку:\n{link}\n\n"
            "Как только партнёр её откроет, вы будете играть одну игру на двух телефонах: "
            "одна колода, одна очередь, и у каждого свой язык."
        ),
        "room_joined": (
            "Вы в комнате, партнёр — {name}: теперь это одна игра на двух телефонах. "
            "/leave вернёт вас к своей игре."
        ),
        "room_back": "С возвращением в комнату! Игра там же, где вы остановились.",
        "room_partner_joined": "{name} теперь в комнате. Выберите тему, когда будете готовы.",
        "room_full": "В этой комнате уже двое, так что добавить вас не получится.",
        "room_unknown": (
            "Эта ссылка больше не ведёт в комнату. Попросите партнёра прислать новую (/room)."
        ),
        "room_own": "Это ссылка на вашу же комнату. Отправьте её партнёру.",
        "room_left": (
            "Вы вышли из комнаты. Её игра останется как есть, и по той же ссылке можно "
            "вернуться. А вот ваша собственная игра:"
        ),
        "room_partner_left": (
            "{name} выходит из комнаты. Игра останется как есть, по той же ссылке можно вернуться."
        ),
        "not_in_room": "Вы сейчас не в комнате. /room создаст комнату для вас и партнёра.",
        "room_private_only": (
            "Комната — это два личных чата. Напишите мне в личку и отправьте /room."
        ),
        "adult_prompt_each": (
            "В теме «Секс» откровенные вопросы и задания — только для взрослых.\n\n"
            "Каждый из вас подтверждает это за себя: мне есть 18, и такая игра мне по душе."
        ),
        "adult_waiting": "Спасибо. Тема откроется, когда подтвердят все, кто играет.",
        "adult_first": "Сначала подтвердите, пожалуйста, что вам есть 18.",
        "btn_save": "♥ Сохранить",
        "btn_unsave": "💔 Убрать",
        "btn_swap": "🔄 Другая карта",
        "btn_previous": "⏮ Прошлая",
        "btn_end": "🏁 Закончить игру",
        "btn_deeper": "⤵️ Глубже: {level}",
        "btn_next_level": "⤵️ {level}",
        "btn_keep": "▶️ Вернуться к игре",
        "btn_next_favourite": "Ещё из избранного ▶️",
        "btn_both_on": "👥 Отвечают оба: да",
        "btn_both_off": "👥 Отвечают оба: нет",
        "btn_reset_deck": "🔀 Перемешать эту колоду",
        "btn_reset_all": "🧹 Забыть всю игру",
        "btn_cancel": "↩️ Отмена",
        "btn_leave": "🚪 Выйти из комнаты",
        "btn_room": "👫 Играть на расстоянии",
        "cmd_favourites": "Сыграть сохранённые карты",
        "cmd_room": "Играть вдвоём на двух телефонах",
        "cmd_leave": "Выйти из комнаты",
        "description": (
            "«Вечность» — карточная игра для настоящих разговоров: с другом, на свидании или "
            "с самым близким человеком. Четыре темы, уровни всё глубже, по одной карте и по "
            "очереди. Можно играть на одном телефоне, в группе или на двух телефонах, если "
            "вы далеко друг от друга."
        ),
        "short_description": "Карточная игра для честных разговоров вдвоём.",
    },
    "cs": {
        "welcome": (
            "Ahoj! Vítejte ve hře Vechnost 🌙\n\n"
            "Je to karetní hra pro rozhovory, na kterých záleží: s kamarádem, na rande "
            "nebo s někým, koho milujete. Vyberte si téma, vytáhněte kartu a odpovídejte "
            "střídavě a upřímně. Špatné odpovědi tu nejsou, jen zvědavost.\n\n"
            "Čím začneme?"
        ),
        "welcome_back": (
            "Vítejte zpátky! Budeme pokračovat tam, kde jsme skončili, nebo si vybereme nové téma?"
        ),
        "help": (
            "Jak hrát Vechnost:\n\n"
            "1. Napište mi svá dvě jména („Anna a Tom“): na každé kartě pak uvidíte, kdo se "
            "ptá a kdo odpovídá, střídavě. Ve skupině hrají první dva, kdo klepnou na tlačítko.\n"
            "2. Vyberte téma a úroveň: první karta přijde hned. Čím vyšší úroveň, tím hlubší "
            "otázky; po zhruba tuctu karet vám nabídnu jít hlouběji.\n"
            "3. Pod každou kartou: ♥ Uložit ji schová do oblíbených, 🔄 Jiná karta ji vrátí "
            "do balíčku, ⏮ Předchozí ukáže tu minulou, 🏁 ukončí hru s krátkým shrnutím.\n\n"
            "Karty se neopakují, dokud neprojdete celý balíček. Jste od sebe daleko? /room vám "
            "dá odkaz: jedna hra na dvou telefonech, každý ve svém jazyce.\n\n"
            "/start – hlavní nabídka\n/favourites – uložené karty\n"
            "/room – hra na dvou telefonech\n/leave – odejít z místnosti\n"
            "/language – změnit jazyk\n"
            "/reset – začít znovu\n/help – tahle nápověda"
        ),
        "choose_language": "V jakém jazyce budeme hrát?",
        "language_set": "Skvěle, odteď hrajeme česky.",
        "choose_theme": "Vyberte téma:",
        "choose_level": (
            "{theme}: vyberte úroveň. Úroveň 1 je jemný začátek, úroveň 3 jde do hloubky."
        ),
        "choose_heat": (
            "{theme}: jak žhavě budeme hrát? „Jemně“ je něžný začátek, „Žhavě“ je odvážnější."
        ),
        "choose_content": "{theme}: otázky k povídání, nebo úkoly, které zvládnete spolu?",
        "deck_intro": (
            "{deck}\n"
            "Vytaženo karet: {drawn}/{total}.\n\nAž budete připraveni, klepněte na „Další karta“."
        ),
        "card_caption": "{deck} · {drawn}/{total}",
        "exhausted": (
            "A to je celý balíček: {cards}, do jedné! 🎉 Díky za každou upřímnou odpověď.\n\n"
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
        "unexpected_media": (
            "Obrázky, nálepky ani hlasové zprávy neotevírám, ale hra pokračuje: tlačítka jsou níže."
        ),
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
        "btn_adult_me": "✅ Ano, je mi 18+",
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
        "ask_names": (
            "Kdo hraje? Napište mi svá dvě jména, třeba „Anna a Tom“, a na každé kartě "
            "uvidíte, kdo je na řadě. Nebo rovnou vyberte téma."
        ),
        "names_set": "Těší mě! Hrají {first} a {second}, jako první se ptá {first}.",
        "turn_ask": "Ptá se {first} → odpovídá {second}",
        "turn_ask_one": "Ptá se {first}",
        "turn_task": "Čte {first} → plní {second}",
        "turn_both": "Nejdřív odpovídá {first}, pak {second}",
        "next_drawer": "Další kartu táhne {name}.",
        "not_your_turn": "Další kartu táhne {name}.",
        "opening_caption": "{deck} · jak hrajeme",
        "closing_caption": "{deck} · poslední karta",
        "previous_caption": "Jedna z dřívějších karet",
        "no_previous": "Dřívější karta tu zatím není.",
        "pace_offer": "Karet na této úrovni: {count}. Půjdeme o úroveň hlouběji?",
        "pace_offer_last": "Karet už je {count}. Hrajeme dál, nebo hru ukončíme tlačítkem 🏁?",
        "swapped": "Tahle karta se vrátila do balíčku. Tady je jiná.",
        "swap_last": "Tohle je v balíčku poslední karta.",
        "swap_not_yours": "Tuhle kartu může vyměnit jen {name}.",
        "saved": "Uloženo do oblíbených ♥",
        "unsaved": "Odebráno z oblíbených.",
        "summary": (
            "A to je celá hra. Díky za každou upřímnou odpověď 🌙\n\n"
            "Sdílených karet: {cards}\nSpolečný čas: {minutes} min\n"
            "Uloženo do oblíbených: {saved}\nKaret ve všech vašich hrách: {total}\n\n"
            "/favourites – zahrát si uložené karty."
        ),
        "favourites_empty": (
            "V oblíbených zatím nic není. Pod kartou, ke které se chcete vrátit, klepněte "
            "na „♥ Uložit“."
        ),
        "favourite_caption": "♥ Oblíbená {number}/{total}",
        "both_on": "Teď odpovídáte na každou kartu oba a příště začíná ten druhý.",
        "both_off": "Jeden se ptá, druhý odpovídá, a střídáte se.",
        "reset_confirm": (
            "Začít znovu? Můžete zamíchat jen tenhle balíček, nebo zapomenout celou hru "
            "i se jmény. Jazyk a oblíbené karty zůstanou."
        ),
        "reset_deck_done": "Balíček je zamíchaný: všechny jeho karty jsou zpátky ve hře.",
        "reset_cancelled": "Nic se nezměnilo. Hrajeme dál.",
        "room_created": (
            "Místnost je připravená. Pošlete tenhle odkaz tomu, s kým chcete hrát:\n{link}\n\n"
            "Až ho otevře, budete hrát jednu hru na dvou telefonech: jeden balíček, jedno "
            "pořadí a každý ve svém jazyce."
        ),
        "room_joined": (
            "Jste v místnosti. Hrajete jednu hru na dvou telefonech, vy a {name}. "
            "/leave vás vrátí k vaší vlastní hře."
        ),
        "room_back": "Vítejte zpátky v místnosti! Hra je tam, kde jste skončili.",
        "room_partner_joined": "{name} je teď v místnosti. Až budete připraveni, vyberte téma.",
        "room_full": "V téhle místnosti už jsou dva, takže vás přidat nemůžu.",
        "room_unknown": ("Tenhle odkaz už do žádné místnosti nevede. Požádejte o nový (/room)."),
        "room_own": "To je odkaz na vaši vlastní místnost. Pošlete ho tomu, s kým chcete hrát.",
        "room_left": (
            "Odešli jste z místnosti. Její hra zůstane, jak je, a stejný odkaz vás vrátí "
            "zpátky. Tady je vaše vlastní hra:"
        ),
        "room_partner_left": (
            "{name} odchází z místnosti. Hra zůstane, jak je, a stejný odkaz vede zpátky."
        ),
        "not_in_room": "Teď nejste v žádné místnosti. /room ji založí pro vás dva.",
        "room_private_only": (
            "Místnost spojuje dva soukromé chaty. Napište mi soukromě a pošlete /room."
        ),
        "adult_prompt_each": (
            "Téma Sex obsahuje explicitní otázky a úkoly, určené jen pro dospělé.\n\n"
            "Každý z vás to potvrzuje za sebe: je mi alespoň 18 let "
            "a s takovou hrou souhlasím."
        ),
        "adult_waiting": "Děkuji. Téma se otevře, až potvrdí všichni, kdo hrají.",
        "adult_first": "Nejdřív prosím potvrďte, že je vám alespoň 18 let.",
        "btn_save": "♥ Uložit",
        "btn_unsave": "💔 Odebrat",
        "btn_swap": "🔄 Jiná karta",
        "btn_previous": "⏮ Předchozí",
        "btn_end": "🏁 Ukončit hru",
        "btn_deeper": "⤵️ Hlouběji: {level}",
        "btn_next_level": "⤵️ {level}",
        "btn_keep": "▶️ Zpět ke hře",
        "btn_next_favourite": "Další oblíbená ▶️",
        "btn_both_on": "👥 Odpovídají oba: ano",
        "btn_both_off": "👥 Odpovídají oba: ne",
        "btn_reset_deck": "🔀 Zamíchat balíček",
        "btn_reset_all": "🧹 Zapomenout celou hru",
        "btn_cancel": "↩️ Zrušit",
        "btn_leave": "🚪 Odejít z místnosti",
        "btn_room": "👫 Hrát na dálku",
        "cmd_favourites": "Zahrát si uložené karty",
        "cmd_room": "Hrát spolu na dvou telefonech",
        "cmd_leave": "Odejít z místnosti",
        "description": (
            "Vechnost je karetní hra pro rozhovory, na kterých záleží: s kamarádem, na rande "
            "nebo s někým, koho milujete. Čtyři témata, stále hlubší úrovně, jedna karta "
            "po druhé a střídavě. Hrajte na jednom telefonu, ve skupině, nebo na dvou "
            "telefonech, když jste od sebe daleko."
        ),
        "short_description": "Karetní hra pro upřímné rozhovory ve dvou.",
    },
}

COMMANDS: Final[tuple[str, ...]] = (
    "start", "help", "favourites", "room", "leave", "language", "reset",
)  # fmt: skip
"""The commands registered with setMyCommands, in menu order."""


def t(language: Language | None, key: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English when unset), with ``values`` filled in,
    set like the cards: a one-letter word (ru «в», cs "k") stays with the next word and a
    dash with the word before it, so a phone never starts a line with either."""
    language = language or DEFAULT_LANGUAGE
    text = TEXTS[language][key]
    return bind_short_words(text.format(**values) if values else text, language)


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


_CARD_FORMS: Final[dict[Language, tuple[str, str, str]]] = {
    "en": ("card", "cards", "cards"),
    "ru": ("карта", "карты", "карт"),
    "cs": ("karta", "karty", "karet"),
}


def count_cards(language: Language | None, count: int) -> str:
    """``count`` cards with the noun in the form the number needs: en 1 card / 2 cards;
    ru 1 карта, 2 карты, 5 карт, 21 карта, 11 карт; cs 1 karta, 2 karty, 5 karet."""
    one, few, many = _CARD_FORMS[language or DEFAULT_LANGUAGE]
    if language == "ru":
        tens, units = count % 100, count % 10
        form = (
            many if 11 <= tens <= 14 else one if units == 1 else few if units in (2, 3, 4) else many
        )
    elif language == "cs":
        form = one if count == 1 else few if count in (2, 3, 4) else many
    else:
        form = one if count == 1 else few
    return f"{count} {form}"


CLIENT_LANGUAGES: Final[dict[str, Language | None]] = {
    "ru": "ru", "be": "ru", "kk": "ru", "cs": "cs", "sk": "cs", "en": "en", "uk": None,
}  # fmt: skip
"""Telegram client languages the bot maps to one of its own; None: ask the player
(a Ukrainian client is asked, not put into Russian). Others get English."""

MENU_LANGUAGES: Final[dict[str, Language]] = {"uk": "en", "be": "ru", "kk": "ru", "sk": "cs"}
"""Command menus for clients in these languages, in the language the bot speaks to them."""

CHOOSE_LANGUAGE_ANY: Final = " · ".join(
    ("Which language shall we play in?", "На каком языке будем играть?",
     "V jakém jazyce budeme hrát?")
)  # fmt: skip
"""The question for a player whose language the bot does not know yet."""


def language_from_code(code: str | None) -> Language | None:
    """Our language for a Telegram ``language_code``; None when the player should choose."""
    base = (code or "").split("-")[0].lower()
    return CLIENT_LANGUAGES.get(base, "en")
